"""The frame loop on three threads: decode, segment + composite, encode, with small queues.

On two cores a serial loop costs decode + inference + composite + encode per frame; with the
stages on their own threads (OpenCV, ONNX Runtime and FFmpeg release the GIL while they work)
throughput is set by the slowest stage instead. The queues are bounded (back-pressure: a slow
encoder stops the decoder, memory stays flat), there is one thread per stage so frames keep
their order, and every frame read is processed and written: a stop (Ctrl-C, SIGTERM, the
frame limit) ends the reading, and the frames already read still go through. The latency of
each frame (read start to written) is recorded as the ``latency`` stage, apart from the
throughput.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeopt.apps.background.remover import BackgroundRemover

__all__ = ["threaded_loop"]

_END = object()
_DEPTH = 3  # frames in flight per queue: enough to hide jitter, little latency


def threaded_loop(
    read: Callable[[], np.ndarray | None],
    write: Callable[[np.ndarray], None],
    remover: BackgroundRemover,
    stop: list[str],
    max_frames: int | None,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Run the three stages until the input ends, ``stop`` fills, or ``max_frames``.

    Args:
        read: The next frame, or None at the end.
        write: Encode or send one frame (it must be done with the array when it returns).
        remover: Segmentation and compositing (on the calling thread).
        stop: Filled by a signal handler: read no more frames.
        max_frames: Read at most this many frames.
        progress: Called with the frames written so far, now and then.

    Returns:
        (frames read, frames written).

    Raises:
        Whatever a stage raised (the first error), after every thread has ended.
    """
    times = remover.times
    frames_in: queue.Queue[Any] = queue.Queue(_DEPTH)
    frames_out: queue.Queue[Any] = queue.Queue(_DEPTH)
    free: queue.Queue[np.ndarray] = queue.Queue()
    errors: list[BaseException] = []
    halt = threading.Event()
    counts = {"in": 0, "out": 0}

    def reader() -> None:
        try:
            while not halt.is_set() and not stop:
                if max_frames is not None and counts["in"] >= max_frames:
                    break
                t0 = time.perf_counter()
                frame = read()
                if frame is None:
                    break
                times.add("decode", (time.perf_counter() - t0) * 1e3)
                counts["in"] += 1
                frames_in.put((frame, t0))
        except BaseException as e:
            errors.append(e)
        finally:
            frames_in.put(_END)

    def writer() -> None:
        try:
            while True:
                item = frames_out.get()
                if item is _END:
                    return
                out, t0 = item
                t1 = time.perf_counter()
                write(out)
                now = time.perf_counter()
                times.add("encode", (now - t1) * 1e3)
                times.add("latency", (now - t0) * 1e3)
                free.put(out)
                counts["out"] += 1
                if progress is not None and counts["out"] % 15 == 0:
                    progress(counts["out"])
        except BaseException as e:
            errors.append(e)
            halt.set()
            while frames_out.get() is not _END:  # unblock the segmenting thread
                pass

    threads = [threading.Thread(target=f, name=f"edgeopt-{f.__name__}") for f in (reader, writer)]
    for t in threads:
        t.start()
    try:
        while True:
            item = frames_in.get()
            if item is _END:
                break
            frame, t0 = item
            if halt.is_set():
                continue  # the writer failed: drain the reader, write nothing more
            try:
                out = free.get_nowait()
                if out.shape != frame.shape:
                    out = np.empty_like(frame)
            except queue.Empty:
                out = np.empty_like(frame)  # at most 2 * _DEPTH + 2 buffers ever exist
            remover.process(frame, "BGR", out)
            frames_out.put((out, t0))
    except BaseException as e:
        errors.append(e)
        halt.set()
        while frames_in.get() is not _END:
            pass
    finally:
        frames_out.put(_END)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return counts["in"], counts["out"]
