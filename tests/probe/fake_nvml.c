/* A stand-in libnvidia-ml.so.1 for tests: answers the NVML calls the probe makes with values
 * recorded from real machines (the JSON files in fixtures/gpu/nvml, turned into answers.h by the test).
 * Unknown values answer NVML_ERROR_NOT_SUPPORTED, as real drivers do for unsupported queries. */
#include <string.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7

struct gpu_answer {
    const char *name, *uuid, *serial, *pci_bus_id;
    int cc_major, cc_minor;
    long long memory_total_mib;
    int persistence, ecc_current, ecc_pending, mig_current, mig_pending;
    long long power_limit_mw;
    int max_clock_sm, max_clock_mem;
};

#include "answers.h"  /* INIT_RESULT, DRIVER_VERSION, CUDA_DRIVER_VERSION, GPU_COUNT, GPUS[] */

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

static int initialized = 0;

#define REQUIRE_INIT() do { if (!initialized) return NVML_ERROR_UNINITIALIZED; } while (0)

static int copy_text(const char *value, char *out, unsigned int length) {
    if (value == NULL) return NVML_ERROR_NOT_SUPPORTED;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

static const struct gpu_answer *gpu(void *handle) { return (const struct gpu_answer *)handle; }

int nvmlInit_v2(void) { initialized = (INIT_RESULT == NVML_SUCCESS); return INIT_RESULT; }
int nvmlShutdown(void) { REQUIRE_INIT(); initialized = 0; return NVML_SUCCESS; }
int nvmlSystemGetDriverVersion(char *out, unsigned int length) { REQUIRE_INIT(); return copy_text(DRIVER_VERSION, out, length); }
int nvmlSystemGetCudaDriverVersion_v2(int *version) {
    REQUIRE_INIT();
    if (CUDA_DRIVER_VERSION < 0) return NVML_ERROR_NOT_SUPPORTED;
    *version = CUDA_DRIVER_VERSION;
    return NVML_SUCCESS;
}
int nvmlDeviceGetCount_v2(unsigned int *count) { REQUIRE_INIT(); *count = GPU_COUNT; return NVML_SUCCESS; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
    REQUIRE_INIT();
    if (index >= GPU_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    *handle = (void *)&GPUS[index];
    return NVML_SUCCESS;
}
int nvmlDeviceGetName(void *h, char *out, unsigned int n) { REQUIRE_INIT(); return copy_text(gpu(h)->name, out, n); }
int nvmlDeviceGetUUID(void *h, char *out, unsigned int n) { REQUIRE_INIT(); return copy_text(gpu(h)->uuid, out, n); }
int nvmlDeviceGetSerial(void *h, char *out, unsigned int n) { REQUIRE_INIT(); return copy_text(gpu(h)->serial, out, n); }
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    REQUIRE_INIT();
    if (gpu(h)->cc_major < 0) return NVML_ERROR_NOT_SUPPORTED;
    *major = gpu(h)->cc_major; *minor = gpu(h)->cc_minor;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *memory) {
    REQUIRE_INIT();
    if (gpu(h)->memory_total_mib < 0) return NVML_ERROR_NOT_SUPPORTED;
    memory->total = (unsigned long long)gpu(h)->memory_total_mib << 20;
    memory->free = memory->used = 0;
    return NVML_SUCCESS;
}
static int pair(int current, int pending, unsigned int *out_current, unsigned int *out_pending) {
    if (current < 0 || pending < 0) return NVML_ERROR_NOT_SUPPORTED;
    *out_current = current; *out_pending = pending;
    return NVML_SUCCESS;
}
int nvmlDeviceGetEccMode(void *h, unsigned int *c, unsigned int *p) { REQUIRE_INIT(); return pair(gpu(h)->ecc_current, gpu(h)->ecc_pending, c, p); }
int nvmlDeviceGetMigMode(void *h, unsigned int *c, unsigned int *p) { REQUIRE_INIT(); return pair(gpu(h)->mig_current, gpu(h)->mig_pending, c, p); }
int nvmlDeviceGetPersistenceMode(void *h, unsigned int *mode) {
    REQUIRE_INIT();
    if (gpu(h)->persistence < 0) return NVML_ERROR_NOT_SUPPORTED;
    *mode = gpu(h)->persistence;
    return NVML_SUCCESS;
}
int nvmlDeviceGetPowerManagementLimit(void *h, unsigned int *limit) {
    REQUIRE_INIT();
    if (gpu(h)->power_limit_mw < 0) return NVML_ERROR_NOT_SUPPORTED;
    *limit = (unsigned int)gpu(h)->power_limit_mw;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMaxClockInfo(void *h, unsigned int type, unsigned int *clock) {
    REQUIRE_INIT();
    int value = type == 1 ? gpu(h)->max_clock_sm : type == 2 ? gpu(h)->max_clock_mem : -1;
    if (value < 0) return NVML_ERROR_NOT_SUPPORTED;
    *clock = value;
    return NVML_SUCCESS;
}
int nvmlDeviceGetPciInfo_v3(void *h, nvmlPciInfo_t *pci) {
    REQUIRE_INIT();
    if (gpu(h)->pci_bus_id == NULL) return NVML_ERROR_NOT_SUPPORTED;
    memset(pci, 0, sizeof *pci);
    strncpy(pci->busId, gpu(h)->pci_bus_id, sizeof pci->busId - 1);
    return NVML_SUCCESS;
}
