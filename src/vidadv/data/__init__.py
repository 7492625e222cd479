"""vidadv.data: real video data (Kinetics-400, UCF-101, CSV lists), PyAV video I/O and clip transforms.

Clips are float32 tensors ``(C, T, H, W)`` in [0, 1]; dataset items are ``(clip, label, clip_id)``.
The paper's attacked-clip lists are the defaults (:func:`kinetics400_attack_list`,
:func:`ucf101_attack_list`); :func:`build_dataset` builds any dataset from a config dict.
(``vidadv.data.synthetic`` - the procedural benchmark dataset - is a separate module, imported lazily.)
"""

from .csv_dataset import ClipDataset, ClipRef, CsvClipDataset, make_clip_id, read_clip_csv
from .factory import DATASET_TYPES, build_dataset, dataset_spec_keys
from .kinetics import (
    KINETICS400_NUM_CLASSES,
    Kinetics400Clips,
    kinetics400_attack_list,
    kinetics400_class_names,
    kinetics_clip_indices,
)
from .transforms import (
    SpatialTransform,
    center_crop,
    frames_to_clip,
    loop_pad,
    resize_clip,
    resize_short_side,
    strided_last_indices,
    strided_window_indices,
    tt_kinetics_indices,
    ucf_loop_indices,
)
from .ucf101 import (
    UCF101_NUM_CLASSES,
    UCF101Clips,
    ucf101_attack_list,
    ucf101_class_names,
    ucf101_test01_list,
)
from .video import (
    VideoDecodeError,
    count_folder_frames,
    count_frames,
    decode_video_bytes,
    encode_video_bytes,
    h264_roundtrip,
    quantize_uint8,
    read_frame_folder,
    read_video_frames,
    to_uint8_frames,
    video_frame_rate,
    write_video,
)

__all__ = [
    "ClipDataset",
    "ClipRef",
    "CsvClipDataset",
    "DATASET_TYPES",
    "KINETICS400_NUM_CLASSES",
    "Kinetics400Clips",
    "SpatialTransform",
    "UCF101_NUM_CLASSES",
    "UCF101Clips",
    "VideoDecodeError",
    "build_dataset",
    "center_crop",
    "count_folder_frames",
    "count_frames",
    "dataset_spec_keys",
    "decode_video_bytes",
    "encode_video_bytes",
    "frames_to_clip",
    "h264_roundtrip",
    "kinetics400_attack_list",
    "kinetics400_class_names",
    "kinetics_clip_indices",
    "loop_pad",
    "make_clip_id",
    "quantize_uint8",
    "read_clip_csv",
    "read_frame_folder",
    "read_video_frames",
    "resize_clip",
    "resize_short_side",
    "strided_last_indices",
    "strided_window_indices",
    "to_uint8_frames",
    "tt_kinetics_indices",
    "ucf101_attack_list",
    "ucf101_class_names",
    "ucf101_test01_list",
    "ucf_loop_indices",
    "video_frame_rate",
    "write_video",
]
