"""GPUs through nvidia-smi, when NVML cannot answer: `--query-gpu` in CSV, fields an old driver rejects
dropped one by one."""

# nvidia-smi --query-gpu fields, in the order of the consolidated GPU record. Old drivers reject
# some (compute_cap before ~510): rejected fields are dropped one by one and the query repeated.
SMI_FIELDS = (
    ("index", "index"), ("name", "name"), ("uuid", "uuid"), ("serial", "serial"),
    ("compute_cap", "compute_capability"), ("memory.total", "memory_total_mib"),
    ("pci.bus_id", "pci_bus_id"), ("persistence_mode", "persistence"),
    ("ecc.mode.current", "ecc_current"), ("ecc.mode.pending", "ecc_pending"),
    ("mig.mode.current", "mig_current"), ("mig.mode.pending", "mig_pending"),
    ("power.limit", "power_limit_w"), ("clocks.max.sm", "max_clock_sm_mhz"),
    ("clocks.max.memory", "max_clock_mem_mhz"), ("driver_version", "driver_version"),
)



def parse_smi_value(key, raw):
    """One --query-gpu CSV cell as a typed value ('[N/A]', 'N/A' and '[Not Supported]' are None)."""
    value = raw.strip()
    if value in ("N/A", "[N/A]", "[Not Supported]", "[Unknown Error]", ""):
        return None
    if key in ("memory_total_mib", "power_limit_w", "max_clock_sm_mhz", "max_clock_mem_mhz", "index"):
        number = value.split()[0]
        try:
            return int(number) if key in ("memory_total_mib", "max_clock_sm_mhz", "max_clock_mem_mhz", "index") \
                else float(number)
        except ValueError:
            return None
    if key in ("persistence", "ecc_current", "ecc_pending", "mig_current", "mig_pending"):
        return {"enabled": True, "disabled": False}.get(value.lower())
    return value


def parse_smi_csv(text):
    """`nvidia-smi --query-gpu=… --format=csv` (with its header) as GPU records keyed like NVML's."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return []
    by_query = dict(SMI_FIELDS)
    header = [column.strip().split(" [")[0] for column in lines[0].split(",")]
    keys = [by_query.get(column, column) for column in header]
    return [dict((key, parse_smi_value(key, cell)) for key, cell in zip(keys, row.split(",")))
            for row in lines[1:]]


def rejected_smi_field(output):
    """The field name in 'Field "compute_cap" is not a valid field to query.', else None."""
    marker = "is not a valid field to query"
    if marker in output and '"' in output:
        return output.split('"')[1]
    return None


def nvidia_smi_fingerprint(run=None):
    """GPUs through nvidia-smi, degrading field by field on drivers that reject some fields."""
    import subprocess

    def default_run(arguments):
        completed = subprocess.run(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, check=False)
        return completed.returncode, completed.stdout.decode("utf-8", "replace")

    run = run or default_run
    fields = [query for query, _ in SMI_FIELDS]
    rejected = []
    while fields:
        try:
            status, output = run(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv"])
        except (OSError, subprocess.SubprocessError) as error:
            return {"error": "nvidia-smi not runnable: %s" % error, "rejected_fields": rejected}
        field = rejected_smi_field(output)
        if field in fields:
            fields.remove(field)
            rejected.append(field)
            continue
        if status != 0:
            return {"error": output.strip().splitlines()[0] if output.strip() else "exit status %d" % status,
                    "rejected_fields": rejected}
        gpus = parse_smi_csv(output)
        driver = next((g.pop("driver_version") for g in gpus if "driver_version" in g), None)
        for gpu in gpus:
            gpu.pop("driver_version", None)
        return {"driver_version": driver, "gpus": gpus, "rejected_fields": rejected}
    return {"error": "nvidia-smi rejected every field", "rejected_fields": rejected}
