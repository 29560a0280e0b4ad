"""The evaluation inputs of the probe (runs in the sandbox): the hidden images preprocessed as the student's own
transform (or the usual normalisation) does, and each model's raw outputs on them, exported as tensors."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.contract import TORCHVISION_FOLDERS
from harness.probes.capture import TORCH, cap_text, first_tensor, one_line, safe_isinstance, time_limit
from harness.probes.namespace import expand_containers

MAX_OUTPUT_BYTES = 64 * 1024**2
"""An outputs file bigger than this is not exported."""

EVAL_BATCH = 1_000
"""Evaluation images per forward pass."""

MNIST_MEAN_STD = (0.1307, 0.3081)
"""The usual MNIST normalisation, used when the student's own transform cannot be found."""


def export_outputs(
    model: nn.Module,
    dataset: str,
    input_shape: list[int],
    device: torch.device,
    dtype: torch.dtype,
    folder: Path,
    artifacts: Path,
    context: EvalContext,
    entry: dict[str, Any],
    step_s: float,
) -> None:
    """Run the evaluation images through the model in batches; save raw outputs (N, C) and the first inputs."""
    try:
        inputs, how = context.inputs(dataset)
    except Exception as error:
        context.errors.append(f"{dataset}: preparing the evaluation images failed: {one_line(error)}")
        return
    entry["preprocessing"][dataset] = how
    example = int(np.prod(input_shape[1:]))
    if len(inputs) == 0 or inputs[0].numel() != example:
        values = inputs[0].numel() if len(inputs) else 0
        entry.setdefault("output_errors", {})[dataset] = (
            f"the evaluation images have {values} values each after preprocessing; "
            f"the model takes {example}"
        )
        return
    batch_shape = [-1, *input_shape[1:]]
    chunks = []
    try:
        with time_limit(max(step_s, 0.001 * len(inputs) + step_s)), TORCH.inference_mode():
            for start in range(0, len(inputs), EVAL_BATCH):
                batch = inputs[start : start + EVAL_BATCH].reshape(batch_shape).to(device=device, dtype=dtype)
                output = first_tensor(TORCH.module_call(model, batch))
                if output is None:
                    raise TypeError("the model's forward returned no tensor")
                chunks.append(output.detach().to("cpu", torch.float32).reshape(len(batch), -1))
        outputs = TORCH.cat(chunks)  # (N, C)
    except Exception as error:
        entry.setdefault("output_errors", {})[dataset] = one_line(error)
        return
    if outputs.numel() * 4 > MAX_OUTPUT_BYTES:
        size = outputs.numel() * 4
        entry.setdefault("output_errors", {})[dataset] = f"outputs of {size:,} bytes are over the export cap"
        return
    folder.mkdir(parents=True, exist_ok=True)
    TORCH.save(outputs.contiguous().clone(), folder / f"outputs-{dataset}.pt")
    entry["outputs"][dataset] = f"{folder.relative_to(artifacts).as_posix()}/outputs-{dataset}.pt"
    keep = context.export_inputs
    if keep > 0:
        sample = inputs[:keep].reshape(batch_shape).to(torch.float32).contiguous().clone()
        TORCH.save(sample, folder / f"inputs-{dataset}.pt")
        entry["inputs"][dataset] = f"{folder.relative_to(artifacts).as_posix()}/inputs-{dataset}.pt"


@dataclass
class EvalContext:
    """The evaluation images per dataset, preprocessed once as the student's test data was."""

    datasets: list[str]
    paths: dict[str, str]
    items: list[tuple[str, Any]]
    errors: list[str]
    max_images: int
    export_inputs: int
    cache: dict[str, tuple[torch.Tensor, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, items: list[tuple[str, Any]], config: dict[str, Any], errors: list[str]) -> EvalContext:
        paths = {str(k): str(v) for k, v in (config.get("eval") or {}).items()}
        return cls(
            datasets=list(paths),
            paths=paths,
            items=items,
            errors=errors,
            max_images=int(config.get("max_eval_images", 20_000)),
            export_inputs=int(config.get("export_inputs", 1_000)),
        )

    def inputs(self, dataset: str) -> tuple[torch.Tensor, str]:
        """Preprocessed images (N, ...) and a description of the preprocessing."""
        if dataset not in self.cache:
            images = np.load(self.paths[dataset], mmap_mode="r", allow_pickle=False)[: self.max_images]
            images = np.ascontiguousarray(images, dtype=np.uint8)
            self.cache[dataset] = _preprocess(images, dataset, self.items, self.errors)
        return self.cache[dataset]


def _preprocess(
    images: np.ndarray, dataset: str, items: list[tuple[str, Any]], errors: list[str]
) -> tuple[torch.Tensor, str]:
    """Apply the student's own test transform (found in the namespace) to each image, else the default."""
    transform, where = _student_transform(items, dataset, errors)
    if transform is not None:
        try:
            from PIL import Image

            mode = "L" if images.ndim == 3 else "RGB"
            tensors = [transform(Image.fromarray(image, mode=mode)) for image in images]
            if not all(safe_isinstance(t, TORCH.tensor_type) for t in tensors):
                raise TypeError("the transform does not return tensors")
            stacked = TORCH.stack([t.to(torch.float32) for t in tensors])  # (N, 1, 28, 28) for MNIST
            return stacked, f"student transform ({where}): {cap_text(_describe_transform(transform), 500)}"
        except Exception as error:
            errors.append(f"{dataset}: the transform from {where} failed on the evaluation images "
                          f"({one_line(error)}); the default preprocessing was used")
    return _default_preprocess(images, dataset)


def _default_preprocess(images: np.ndarray, dataset: str) -> tuple[torch.Tensor, str]:
    """The assignments' usual preprocessing: MNIST ToTensor + Normalize, FashionMNIST ToTensor, SIGNS /255 as NCHW."""
    scaled = TORCH.from_numpy(images.astype(np.float32) / 255.0)
    if dataset == "signs" or images.ndim == 4:
        return scaled.permute(0, 3, 1, 2).contiguous(), "default: x / 255, as (N, 3, 64, 64)"  # (N, 3, 64, 64)
    scaled = scaled.unsqueeze(1)  # (N, 1, 28, 28)
    if dataset == "mnist":
        mean, std = MNIST_MEAN_STD
        return (scaled - mean) / std, f"default: ToTensor(), Normalize(({mean},), ({std},))"
    return scaled, "default: ToTensor()"


def _student_transform(items: list[tuple[str, Any]], dataset: str, errors: list[str]) -> tuple[Any, str]:
    """The transform of the student's test dataset (else train dataset), else a Compose named like a transform."""
    class_name = TORCHVISION_FOLDERS.get(dataset)
    if class_name and "torchvision" in sys.modules:
        test, train = None, None
        for name, value, _ in expand_containers(items, errors):
            dataset_obj = _unwrap_dataset(value)
            if dataset_obj is None or type(dataset_obj).__name__ != class_name:
                continue
            transform = getattr(dataset_obj, "transform", None)
            if transform is None:
                continue
            if getattr(dataset_obj, "train", True) is False:
                test = test or (transform, name)
            else:
                train = train or (transform, name)
        chosen = test or train
        if chosen is not None:
            return chosen[0], f"`{chosen[1]}`"
    compose = None
    if "torchvision.transforms" in sys.modules:
        compose = getattr(sys.modules["torchvision.transforms"], "Compose", None)
    named = [
        (n, v) for n, v in items if "transform" in n.lower() and compose is not None and safe_isinstance(v, compose)
    ]
    named.sort(key=lambda nv: "test" not in nv[0].lower())
    if named:
        return named[0][1], f"`{named[0][0]}`"
    return None, ""


def _unwrap_dataset(value: Any) -> Any:
    """The torchvision dataset behind a dataset, Subset or DataLoader value; None if there is none."""
    for _ in range(3):
        module = type(value).__module__ or ""
        if module.startswith("torchvision.datasets"):
            return value
        inner = None
        if module.startswith("torch.utils.data"):
            inner = getattr(value, "dataset", None)
        if inner is None:
            return None
        value = inner
    return None


def _describe_transform(transform: Any) -> str:
    try:
        return " ".join(repr(transform).split())
    except Exception:
        return type(transform).__name__
