"""The machine a measurement ran on, and the process's peak memory.

Every timing this repository reports (``tools/analysis/benchmark.py``,
``tools/analysis/bench_dcn.py``, ``make demo``) records the machine with
:func:`machine_info`, so that the figures of different tools can be
compared, and reads CPU peak memory with :func:`reset_peak_rss` /
:func:`peak_rss_mib`.

Peak memory on the CPU is the process's peak resident set size: Linux's
``VmHWM`` in ``/proc/self/status``, which writing ``5`` to
``/proc/self/clear_refs`` resets to the current size (Linux >= 4.0).  Where
that file cannot be written the peak counts from the process start, and
:func:`reset_peak_rss` says so by returning ``False``.
"""
import os
import platform
from typing import Any, Dict, Optional


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s ``model name``), else what
    :mod:`platform` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS
    has one: a container or ``taskset`` gets fewer than ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> Optional[float]:
    """The 1-minute load average, rounded to 0.01; None where the OS has
    none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info(device: Optional[str] = None) -> Dict[str, Any]:
    """What a timing depends on: CPU model, cores usable / present, OS,
    Python, torch and its intra-op thread count, the 1-minute load average;
    with ``device`` given also ``device``, and for a CUDA device the GPU's
    name and torch's CUDA version.

    Keys: ``cpu``, ``cores``, ``cpu_count``, ``platform``, ``system``,
    ``python``, ``torch``, ``torch_threads``, ``load_average`` (+
    ``device``, ``gpu``, ``cuda``).
    """
    import torch
    info: Dict[str, Any] = dict(
        cpu=cpu_name(),
        cores=usable_cores(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        system=f'{platform.system()} {platform.release()}',
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        load_average=load_average())
    if device is not None:
        info['device'] = device
        if str(device).startswith('cuda'):
            info['gpu'] = torch.cuda.get_device_name(torch.device(device))
            info['cuda'] = torch.version.cuda
    return info


def proc_status_kib(field: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...);
    None off Linux."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set size to its current size;
    False where the kernel does not allow it (the peak then counts from the
    process start)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_rss_mib() -> Optional[float]:
    """The process's peak resident set size in MiB: ``VmHWM`` (since the
    last :func:`reset_peak_rss`), else ``getrusage``'s ``ru_maxrss`` (since
    the process start, kiB on Linux); None if neither is available."""
    hwm = proc_status_kib('VmHWM')
    if hwm is not None:
        return hwm / 1024
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):
        return None
