"""Wheels for a GPU machine without a package index: the pinned packages it lacks, for its Python, in one folder.

Such machines (common on clusters) carry torch, transformers, accelerate and peft in versions of their own and no
trl or datasets. This downloads, from requirements.txt's pins, trl, datasets (and dill, multiprocess), transformers,
tokenizers, peft and bitsandbytes as manylinux x86-64 wheels for ``--python`` (default 3.12), and keeps in the
bitsandbytes wheel only the library for the GPU machine's CUDA (``--cuda``, default 130 for CUDA 13.0; its other
builds are 100 MB of the wheel's 130). ``benchmarks/gpu_check.sh DIR`` installs the folder there.

    python benchmarks/gpu_wheels.py .whl --cuda 130
"""

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trl", "datasets", "transformers", "tokenizers", "peft", "bitsandbytes")
UNPINNED = ("dill==0.4.1", "multiprocess==0.70.19")  # what datasets needs beyond a CUDA machine's usual packages
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def pins() -> list[str]:
    text = (ROOT / "requirements.txt").read_text()
    found = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", text, flags=re.MULTILINE))
    return [f"{name}=={found[name]}" for name in PACKAGES] + list(UNPINNED)


def slim_bitsandbytes(wheel: Path, cuda: str) -> None:
    """Drop the libraries of other CUDA versions (and ROCm) from the wheel, and their lines from its RECORD."""
    def dropped(name: str) -> bool:
        library = re.search(r"libbitsandbytes_(cuda\d+|rocm\d+)\.so$", name)
        return bool(library) and library.group(1) != f"cuda{cuda}"

    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if dropped(item.filename):
                continue
            data = source.read(item)
            if item.filename.endswith("RECORD"):
                data = b"\n".join(line for line in data.split(b"\n") if not dropped(line.split(b",")[0].decode()))
            target.writestr(item, data)
    slim.replace(wheel)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the wheels go")
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python version (default 3.12)")
    parser.add_argument("--cuda", default="130", help="the GPU machine's CUDA, as bitsandbytes names it (130: 13.0)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               args.python, "--implementation", "cp", "-d", str(args.folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + pins(), check=True)
    for wheel in args.folder.glob("bitsandbytes-*.whl"):
        slim_bitsandbytes(wheel, args.cuda)
    total = sum(path.stat().st_size for path in args.folder.glob("*.whl"))
    print(f"{args.folder}: {len(list(args.folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
