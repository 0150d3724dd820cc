#!/usr/bin/env python3
"""The original project's training script, reduced to what its optimization ladder measured: DeepLabV3-ResNet101
from torchvision with its classifier replaced for the 3 trimap classes, Oxford-IIIT Pet through a torch Dataset
(PIL + torchvision-reference transforms, shared with data_bench.py), DataLoader(num_workers, pin_memory),
optionally torch.jit.script(model) or torch.compile(model), nn.DataParallel(model), or DistributedDataParallel with
N processes (gloo on the CPU, nccl on CUDA), channels_last and bf16 autocast; on the CPU or CUDA.

Used by `petseg bench ladder` as the reference each rung is measured against. Trains `--epochs` epochs of
`--steps` steps (per rank) and prints one JSON line about the LAST epoch (the first warms up: allocator,
oneDNN primitives, TorchScript's profiling runs, torch.compile's compilation): epoch seconds, images, seconds spent
waiting for data.
Exit code 3 when torch/torchvision are not installed.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import warnings

try:
    import torch
    import torch.distributed as dist
    import torchvision
except ImportError as e:  # no torch/torchvision in this interpreter: the caller reports it
    print(f"ladder.py: {e}", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_bench import OxfordPets, TrainTransform  # noqa: E402


def split_names(root):
    names = []
    with open(os.path.join(root, "annotations", "trainval.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                names.append(line.split()[0])
    return names


def build_model(backbone):
    ctor = getattr(torchvision.models.segmentation, "deeplabv3_" + backbone)
    model = ctor(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    model.classifier[4] = torch.nn.Conv2d(256, 3, kernel_size=1)  # the customized classifier
    return model


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(args, rank, world, distributed):
    torch.manual_seed(0)
    threads = args.threads if args.threads > 0 else max(1, os.cpu_count() // world)
    torch.set_num_threads(threads)
    cuda = args.device == "cuda"
    device = torch.device("cuda", rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        # As petseg's run of the same rung (it passes its own setting): cuDNN times its algorithms per shape.
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model = build_model(args.backbone).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.torch_script:
        model = torch.jit.script(model)
    if args.compile:
        model = torch.compile(model)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    elif args.data_parallel:
        model = torch.nn.DataParallel(model)  # one GPU or none: runs the module itself, as on the original's CPU runs
    model.train()
    dataset = OxfordPets(args.data, split_names(args.data), TrainTransform(args.image_size, False))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, world, rank, shuffle=True) if distributed else None
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                                         num_workers=args.workers, pin_memory=args.pin_memory, drop_last=True,
                                         persistent_workers=args.workers > 0)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    result = {}
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        data_s = 0.0
        images = 0
        start = time.perf_counter()
        it = iter(loader)
        for _ in range(args.steps):
            t = time.perf_counter()
            image, target = next(it)
            data_s += time.perf_counter() - t
            image = image.to(device, non_blocking=args.pin_memory)
            target = target.to(device, non_blocking=args.pin_memory)
            if args.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                out = model(image)["out"]
            loss = loss_fn(out.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            images += image.shape[0]
        final_loss = loss.item()  # waits for the device, as petseg's epoch does
        seconds = time.perf_counter() - start
        del it
        result = {"epoch_seconds": seconds, "images": images * world, "data_seconds": data_s,
                  "threads": threads, "ranks": world, "final_loss": final_loss, "torch": torch.__version__}
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--backbone", default="resnet101", choices=["resnet50", "resnet101"])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4, help="per process")
    p.add_argument("--steps", type=int, default=6, help="per epoch and process")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--pin-memory", action="store_true")
    p.add_argument("--torch-script", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile (inductor)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--data-parallel", action="store_true")
    p.add_argument("--ddp", type=int, default=0,
                   help="DistributedDataParallel over N local processes (gloo on the CPU, nccl on CUDA); 1 too")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--threads", type=int, default=0, help="per process; 0: cores / processes")
    p.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark (CUDA)")
    args = p.parse_args()

    if args.ddp >= 1 and "RANK" not in os.environ:
        # torchrun's part: start the ranks, relay rank 0's line.
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(args.ddp),
                   LOCAL_WORLD_SIZE=str(args.ddp))
        procs = [subprocess.Popen([sys.executable] + sys.argv, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                                  stdout=subprocess.PIPE if r == 0 else subprocess.DEVNULL) for r in range(args.ddp)]
        out = procs[0].communicate()[0]
        codes = [procs[0].returncode] + [q.wait() for q in procs[1:]]
        if any(codes):
            print(f"ladder.py: a rank failed: exit codes {codes}", file=sys.stderr)
            sys.exit(1)
        sys.stdout.write(out.decode())
        return
    if args.ddp >= 1:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo", rank=rank, world_size=world)
        result = train(args, rank, world, True)
        dist.barrier()
        dist.destroy_process_group()
        if rank == 0:
            print(json.dumps(result))
        return
    print(json.dumps(train(args, 0, 1, False)))


if __name__ == "__main__":
    main()
