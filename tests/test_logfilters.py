"""Rewording filters: a nested run's warnings said once, reworded or dropped, whichever filter sees them first."""

import logging

from artstudio.logfilters import rewording


def test_nested_filters_drop_reword_and_say_once(caplog):
    """A study (say once, reword the flag) around a start (drop the batch-size warning): the start's filter
    still recognises the warning after the study's filter reworded it."""
    log = logging.getLogger("artstudio.train")
    with caplog.at_level("INFO", logger="artstudio.train"):
        with rewording(["artstudio.train"], once=True, replace={" (--batch-size) ": " (a trial's batch_size) "}):
            with rewording(["artstudio.train"], drop=["batch size %d ("]):
                log.warning("batch size %d (--batch-size) is larger than the %d training rows", 32, 9)
            log.warning("batch size %d (--batch-size) is larger than the %d training rows", 32, 18)
            log.warning("batch size %d (--batch-size) is larger than the %d training rows", 32, 18)
        log.warning("%s is a PNG in mode %s", "/tmp/x/canvas-1.png", "L")
        with rewording(["artstudio.train"], replace={"/tmp/x/canvas-1.png": "the request's first picture"}):
            log.warning("%s is a PNG in mode %s", "/tmp/x/canvas-1.png", "L")
    said = [r.getMessage() for r in caplog.records]
    assert said == ["batch size 32 (a trial's batch_size) is larger than the 18 training rows",
                    "/tmp/x/canvas-1.png is a PNG in mode L",
                    "the request's first picture is a PNG in mode L"]
    assert not logging.getLogger("artstudio.train").filters  # every filter came off again
