"""Following a face through a video, and where a moving crop window should be.

Frames are sampled a few times a second, turned upright as players show them, and
searched for a face. The face centres become a crop path: isolated detections are
dropped, short gaps hold the last position and long ones ease back to the centre, a
dead zone ignores small moves, and a centred moving average smooths what is left.
The path is thinned to a bounded number of keyframes and written as ffmpeg
expressions in ``t`` for the ``crop`` filter, so the render stays one pass.

The face finder is OpenCV's frontal-face Haar cascade when the installed OpenCV
ships it (the 4.x wheels do); OpenCV 5 wheels carry neither the cascade class nor
its model, and then a skin-tone finder is used: skin-coloured blobs of a face's
size and shape with darker features (eyes, brows, mouth) inside them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import cv2
import numpy as np
from numpy.typing import NDArray

from tilework.media.ffmpeg import CancelToken
from tilework.media.probe import MediaInfo

logger = logging.getLogger(__name__)

SAMPLE_FPS = 5.0
ANALYSIS_PIXELS = 480 * 270
"""Frames are shrunk to about this many pixels before faces are looked for."""
MIN_FACE_SAMPLES = 2
MIN_FACE_SHARE = 0.1
"""Below this share of sampled frames with a face, the video is taken as faceless."""
SUPPORT_WINDOW = 2
"""A detection counts when another one lies within this many samples of it."""
HOLD_SECONDS = 1.0
EASE_SECONDS = 1.0
DEAD_ZONE = 0.08
"""Moves of the subject smaller than this share of the crop size are ignored."""
SMOOTH_SECONDS = 0.8
MAX_KEYFRAMES = 240
KEYFRAME_TOLERANCE = 1.0
"""Pixels a thinned path may stray from the smoothed one."""

SKIN_CR = (135, 180)
SKIN_CB = (80, 130)
SKIN_MIN_LUMA = 50
FACE_MIN_AREA = 0.006
FACE_MAX_AREA = 0.6
FACE_MAX_ELONGATION = 2.2
FACE_FILL = (0.45, 0.92)
FACE_MIN_HOLE_SHARE = 0.005
FACE_MIN_FEATURES = 1
FACE_MIN_LUMA_SPREAD = 12.0
CASCADE_FILE = "haarcascade_frontalface_default.xml"

RgbFrame = NDArray[np.uint8]


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: left, top, width, height."""

    x: float
    y: float
    width: float
    height: float

    def scaled(self, factor: float) -> Box:
        return Box(
            self.x * factor,
            self.y * factor,
            self.width * factor,
            self.height * factor,
        )

    def span(self, axis: int) -> tuple[float, float]:
        """Where the box starts and ends along x (axis 0) or y (axis 1)."""
        if axis == 0:
            return self.x, self.x + self.width
        return self.y, self.y + self.height


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: RgbFrame) -> Box | None:
        """The most prominent face in an RGB frame, in its pixels, or None."""


class SkinToneFaceDetector:
    """Finds the largest skin-coloured, face-shaped blob with features inside."""

    name = "skin-tone"

    def detect(self, rgb: RgbFrame) -> Box | None:
        ycc = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb), dtype=np.uint8)
        raw = _skin_mask(ycc)
        mask = cv2.morphologyEx(raw, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))

        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        frame_area = float(mask.shape[0] * mask.shape[1])
        best: tuple[float, Box] | None = None
        for label in range(1, count):
            left, top, width, height, area = (int(v) for v in stats[label][:5])
            if not FACE_MIN_AREA <= area / frame_area <= FACE_MAX_AREA:
                continue
            box = Box(left, top, width, height)
            window = (slice(top, top + height), slice(left, left + width))
            blob = (labels[window] == label).astype(np.uint8)
            if not _looks_like_face(blob, raw[window], ycc[window][..., 0]):
                continue
            if best is None or area > best[0]:
                best = (area, box)
        return best[1] if best else None


class CascadeFaceDetector:
    """OpenCV's frontal-face Haar cascade; returns the largest face found."""

    name = "haar-cascade"

    def __init__(self, model: Path) -> None:
        self._cascade = cv2.CascadeClassifier(str(model))  # type: ignore[attr-defined]
        if self._cascade.empty():
            raise ValueError(f"the face model {model} did not load")

    def detect(self, rgb: RgbFrame) -> Box | None:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        smallest = max(16, min(gray.shape) // 12)
        faces = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=4, minSize=(smallest, smallest)
        )
        if len(faces) == 0:
            return None
        left, top, width, height = max(faces, key=lambda face: face[2] * face[3])
        return Box(float(left), float(top), float(width), float(height))


def face_detector() -> FaceDetector:
    """The best face finder this installation offers."""
    model = _cascade_model()
    if model is not None:
        try:
            return CascadeFaceDetector(model)
        except (ValueError, cv2.error) as exc:
            logger.warning("face cascade unusable, using skin tones: %s", exc)
    return SkinToneFaceDetector()


def _cascade_model() -> Path | None:
    data: Any = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if not hasattr(cv2, "CascadeClassifier") or not folder:
        return None
    model = Path(folder) / CASCADE_FILE
    return model if model.is_file() else None


def _skin_mask(ycc: NDArray[np.uint8]) -> NDArray[np.uint8]:
    luma, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    skin = (
        (cr >= SKIN_CR[0])
        & (cr <= SKIN_CR[1])
        & (cb >= SKIN_CB[0])
        & (cb <= SKIN_CB[1])
        & (luma > SKIN_MIN_LUMA)
    )
    return skin.astype(np.uint8)


def _looks_like_face(
    blob: NDArray[np.uint8], raw: NDArray[np.uint8], luma: NDArray[np.uint8]
) -> bool:
    """Whether a skin blob has a face's shape, shading and darker features."""
    height, width = blob.shape
    if max(width, height) > FACE_MAX_ELONGATION * min(width, height):
        return False

    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    filled_area = int(filled.sum())
    if not FACE_FILL[0] <= filled_area / (width * height) <= FACE_FILL[1]:
        return False
    if float(luma[filled == 1].std()) < FACE_MIN_LUMA_SPREAD:
        return False

    holes = ((filled == 1) & (raw == 0)).astype(np.uint8)
    if int(holes.sum()) < FACE_MIN_HOLE_SHARE * filled_area:
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=8)
    smallest = max(2.0, 0.002 * filled_area)
    features = sum(1 for label in range(1, count) if stats[label][4] >= smallest)
    return features >= FACE_MIN_FEATURES


@dataclass(frozen=True)
class FaceTrack:
    """Face boxes (display pixels) at the sampled times (seconds from the start)."""

    times: tuple[float, ...]
    boxes: tuple[Box | None, ...]
    detector: str

    @property
    def found(self) -> int:
        return sum(box is not None for box in self.boxes)


def find_faces(
    path: Path,
    info: MediaInfo,
    *,
    detector: FaceDetector | None = None,
    cancel: CancelToken | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> FaceTrack:
    """Look for a face in frames sampled across the video, as it is displayed."""
    finder = detector or face_detector()
    times: list[float] = []
    boxes: list[Box | None] = []
    for time, frame, scale in sample_frames(path, info, cancel=cancel):
        times.append(time)
        box = finder.detect(frame)
        boxes.append(box.scaled(1 / scale) if box else None)
        if on_progress is not None and info.duration > 0:
            on_progress(min(100.0, 100.0 * time / info.duration))

    track = FaceTrack(tuple(times), tuple(boxes), finder.name)
    logger.debug("%s: a face in %d of %d samples", path, track.found, len(times))
    return track


def sample_frames(
    path: Path,
    info: MediaInfo,
    *,
    fps: float = SAMPLE_FPS,
    pixels: int = ANALYSIS_PIXELS,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[float, RgbFrame, float]]:
    """Upright RGB frames ``fps`` times a second, shrunk to about ``pixels``.

    Yields the frame's time from the start of the video, the frame, and the scale
    from display pixels to the frame's pixels.
    """
    with av.open(str(path), metadata_errors="replace") as container:
        stream = next((s for s in container.streams.video if not _is_cover(s)), None)
        if stream is None:
            return
        stream.thread_type = "AUTO"
        start = container.start_time / av.time_base if container.start_time else 0.0
        due = 0.0
        try:
            for frame in container.decode(stream):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if frame.time is None or frame.time - start < due - 1e-6:
                    continue
                time = max(0.0, frame.time - start)
                due = (math.floor(time * fps + 1e-6) + 1) / fps
                picture, scale = _upright(frame, info.rotation, pixels)
                yield time, picture, scale
        except av.error.FFmpegError as exc:
            logger.warning("decoding %s for analysis stopped early: %s", path, exc)


def _is_cover(stream: Any) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _upright(
    frame: av.VideoFrame, rotation: int, pixels: int
) -> tuple[RgbFrame, float]:
    scale = min(1.0, math.sqrt(pixels / (frame.width * frame.height)))
    width = max(2, round(frame.width * scale))
    height = max(2, round(frame.height * scale))
    picture = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    turned = np.rot90(picture, k=-(rotation // 90) % 4)
    return np.ascontiguousarray(turned), width / frame.width


@dataclass(frozen=True)
class Keyframe:
    t: float
    x: int
    y: int


@dataclass(frozen=True)
class CropPath:
    """A ``width`` x ``height`` window whose top-left corner moves between keyframes."""

    width: int
    height: int
    keyframes: tuple[Keyframe, ...]

    def at(self, t: float) -> tuple[float, float]:
        """The window's top-left corner at ``t`` seconds, as the render places it."""
        times = [key.t for key in self.keyframes]
        x = float(np.interp(t, times, [key.x for key in self.keyframes]))
        y = float(np.interp(t, times, [key.y for key in self.keyframes]))
        return x, y

    def expressions(self) -> tuple[str, str]:
        """ffmpeg expressions in ``t`` for the window's x and y."""
        times = [key.t for key in self.keyframes]
        return (
            _ramp_sum(times, [key.x for key in self.keyframes]),
            _ramp_sum(times, [key.y for key in self.keyframes]),
        )

    def to_list(self) -> list[dict[str, float | int]]:
        return [{"t": key.t, "x": key.x, "y": key.y} for key in self.keyframes]


def _ramp_sum(times: Sequence[float], values: Sequence[int]) -> str:
    """A piecewise-linear function of ``t`` as a sum of clipped ramps, no nesting."""
    terms = [str(values[0])]
    for (t0, v0), (t1, v1) in pairwise(zip(times, values, strict=True)):
        length = t1 - t0
        if v1 == v0 or length <= 0:
            continue
        terms.append(f"{(v1 - v0) / length:+.6f}*clip(t-{t0:.3f},0,{length:.3f})")
    return "".join(terms)


def plan_crop_path(
    track: FaceTrack, frame: tuple[int, int], crop: tuple[int, int]
) -> CropPath | None:
    """The smoothed path of a ``crop`` window over ``frame`` that keeps the face in.

    Returns None when too few sampled frames hold a face to follow.
    """
    enough = max(MIN_FACE_SAMPLES, MIN_FACE_SHARE * len(track.times))
    if track.found < enough:
        return None

    times = np.asarray(track.times, dtype=float)
    corners = [
        _axis_path(times, track.boxes, axis, frame[axis], crop[axis]) for axis in (0, 1)
    ]
    keyframes = _keyframes(times, corners[0], corners[1])
    return CropPath(crop[0], crop[1], keyframes)


def _axis_path(
    times: NDArray[np.float64],
    boxes: Sequence[Box | None],
    axis: int,
    frame_size: int,
    crop_size: int,
) -> NDArray[np.float64]:
    """The window's start along one axis at each sampled time."""
    if crop_size >= frame_size:
        return np.zeros(len(times))

    spans = [box.span(axis) if box else None for box in _supported(boxes)]
    centres = np.array([(s[0] + s[1]) / 2 if s else math.nan for s in spans])
    middle = frame_size / 2
    path = _fill_gaps(times, centres, middle)
    path = _dead_zone(path, ~np.isnan(centres), DEAD_ZONE * crop_size)
    path = _moving_average(times, path, SMOOTH_SECONDS)
    path = _keep_inside(path, spans, crop_size)
    half = crop_size / 2
    return np.clip(path, half, frame_size - half) - half


def _supported(boxes: Sequence[Box | None]) -> list[Box | None]:
    """The detections that have another detection within a few samples."""
    found = [box is not None for box in boxes]
    kept: list[Box | None] = []
    for index, box in enumerate(boxes):
        low, high = max(0, index - SUPPORT_WINDOW), index + SUPPORT_WINDOW + 1
        neighbours = sum(found[low:high]) - int(found[index])
        kept.append(box if neighbours > 0 else None)
    return kept


def _fill_gaps(
    times: NDArray[np.float64], centres: NDArray[np.float64], middle: float
) -> NDArray[np.float64]:
    """Hold the nearest detection through a gap, then ease towards ``middle``."""
    known = np.flatnonzero(~np.isnan(centres))
    filled = centres.copy()
    for index in np.flatnonzero(np.isnan(centres)):
        after = np.searchsorted(known, index)
        nearest = [known[i] for i in (after - 1, after) if 0 <= i < len(known)]
        source = min(nearest, key=lambda k: abs(times[k] - times[index]))
        distance = abs(times[source] - times[index])
        progress = min(1.0, max(0.0, (distance - HOLD_SECONDS) / EASE_SECONDS))
        eased = progress * progress * (3 - 2 * progress)
        filled[index] = centres[source] + (middle - centres[source]) * eased
    return filled


def _dead_zone(
    path: NDArray[np.float64], detected: NDArray[np.bool_], zone: float
) -> NDArray[np.float64]:
    """Follow detections only by how far they leave a zone around the current spot.

    Filled-in stretches are followed as they are: they are smooth already.
    """
    followed = path.copy()
    spot = float(path[0])
    for index, target in enumerate(path):
        if not detected[index]:
            spot = float(target)
        elif target - spot > zone:
            spot = float(target) - zone
        elif spot - target > zone:
            spot = float(target) + zone
        followed[index] = spot
    return followed


def _moving_average(
    times: NDArray[np.float64], path: NDArray[np.float64], seconds: float
) -> NDArray[np.float64]:
    if len(path) < 3:
        return path
    step = float(np.median(np.diff(times))) or 1 / SAMPLE_FPS
    reach = max(1, round(seconds / step / 2))
    padded = np.pad(path, reach, mode="edge")
    kernel = np.full(2 * reach + 1, 1 / (2 * reach + 1))
    return np.convolve(padded, kernel, mode="valid")


def _keep_inside(
    path: NDArray[np.float64],
    spans: Sequence[tuple[float, float] | None],
    crop_size: int,
) -> NDArray[np.float64]:
    """Nudge the window centre so that each detected face lies inside it."""
    half = crop_size / 2
    kept = path.copy()
    for index, span in enumerate(spans):
        if span is None:
            continue
        start, end = span
        if end - start >= crop_size:
            kept[index] = (start + end) / 2
        else:
            kept[index] = min(max(kept[index], end - half), start + half)
    return kept


def _keyframes(
    times: NDArray[np.float64], xs: NDArray[np.float64], ys: NDArray[np.float64]
) -> tuple[Keyframe, ...]:
    """At most :data:`MAX_KEYFRAMES` keyframes that follow the path closely."""
    if len(times) > MAX_KEYFRAMES:
        grid = np.linspace(times[0], times[-1], MAX_KEYFRAMES)
        xs, ys, times = np.interp(grid, times, xs), np.interp(grid, times, ys), grid

    points = np.column_stack([np.round(xs), np.round(ys)])
    kept = _simplify(times, points, KEYFRAME_TOLERANCE)
    keyframes = [
        Keyframe(round(float(times[i]), 3), int(points[i][0]), int(points[i][1]))
        for i in kept
    ]
    if keyframes[0].t > 0:
        keyframes.insert(0, Keyframe(0.0, keyframes[0].x, keyframes[0].y))
    return tuple(keyframes)


def _simplify(
    times: NDArray[np.float64], points: NDArray[np.float64], tolerance: float
) -> list[int]:
    """Indices of the points a piecewise-linear path needs (Douglas-Peucker in t)."""
    keep = {0, len(times) - 1}
    pending = [(0, len(times) - 1)]
    while pending:
        first, last = pending.pop()
        if last - first < 2:
            continue
        inner = np.arange(first + 1, last)
        share = (times[inner] - times[first]) / max(times[last] - times[first], 1e-9)
        line = points[first] + np.outer(share, points[last] - points[first])
        errors = np.abs(points[inner] - line).max(axis=1)
        worst = int(np.argmax(errors))
        if errors[worst] > tolerance:
            split = int(inner[worst])
            keep.add(split)
            pending += [(first, split), (split, last)]
    return sorted(keep)
