"""The fingerprint's first part: everything that can be known without importing numpy or TensorFlow."""
import os

from .board import board_fingerprint
from .cpu import cpu_info
from .debian import debian_fingerprint
from .environment import allowed_environment
from .gpu import gpu_fingerprint
from .libraries import native_libraries
from .packages import installed_distributions
from .system import host_info, os_info, python_info


def base_fingerprint():
    """Everything that can be known without importing numpy or TensorFlow."""
    return {
        "python": python_info(),
        "os": os_info(),
        "host": host_info(),
        "cpu": cpu_info(),
        **board_fingerprint(),  # board where the machine says what board it is (a Raspberry Pi, a Jetson)
        "packages": installed_distributions(),
        **debian_fingerprint(),  # debian_packages where dpkg keeps a status file (Debian, Ubuntu)
        "env": allowed_environment(os.environ),
        "gpu": gpu_fingerprint(),
        "native_libraries": native_libraries(),
    }
