/* A stand-in libnvidia-ml.so.1 for tests: answers the NVML calls the probe makes with values
 * recorded from real machines (the JSON files in fixtures/gpu/nvml, turned into answers.h by conftest.py).
 *
 * Built against nvml_decls.h (declarations written from NVIDIA's nvml.h, sources named there), so a
 * definition here that disagrees with nvml.h does not compile. Built with -DNVML_FAKE_API=N, it
 * exports only the entry points that NVML API generation had:
 *   3   nvmlInit, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, nvmlDeviceGetPciInfo_v2 (52-byte
 *       struct with a 16-byte bus id), name/UUID/serial/memory/ECC/persistence/power/clocks
 *   8   + nvmlInit_v2, nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2 (drivers 319-375)
 *   9   + nvmlDeviceGetPciInfo_v3 (68-byte struct), nvmlSystemGetCudaDriverVersion,
 *       nvmlDeviceGetCudaComputeCapability; _v2 now takes the 68-byte struct
 *   11  + nvmlSystemGetCudaDriverVersion_v2, nvmlDeviceGetMigMode (CUDA 11, drivers >= 450)
 *   12  as 11 for every call the probe makes
 * Unknown values answer NVML_ERROR_NOT_SUPPORTED, as real drivers do for unsupported queries; a
 * record can make a handle lookup or a query fail with any code (a lost GPU, a refused handle). */
#include <stddef.h>
#include <string.h>

#include "nvml_decls.h"

#ifndef NVML_FAKE_API
#error "build with -DNVML_FAKE_API=<generation>"
#endif

enum query { Q_NAME, Q_UUID, Q_SERIAL, Q_COMPUTE_CAPABILITY, Q_MEMORY, Q_PCI, Q_PERSISTENCE, Q_ECC, Q_MIG,
             Q_POWER, Q_CLOCKS, Q_COUNT };

struct gpu_answer {
    const char *name, *uuid, *serial, *pci_bus_id;
    int cc_major, cc_minor;
    long long memory_total_mib;
    int persistence, ecc_current, ecc_pending, mig_current, mig_pending;
    long long power_limit_mw;
    int max_clock_sm, max_clock_mem;
    int handle_result;          /* what nvmlDeviceGetHandleByIndex answers for this GPU */
    int query_error[Q_COUNT];   /* a non-zero code makes that query fail with it */
};

#include "answers.h"  /* INIT_RESULT, DRIVER_VERSION, CUDA_DRIVER_VERSION, GPU_COUNT, GPUS[] */

static int initialized = 0;

#define REQUIRE_INIT() do { if (!initialized) return NVML_ERROR_UNINITIALIZED; } while (0)

static nvmlReturn_t copy_text(const char *value, char *out, unsigned int length) {
    if (value == NULL) return NVML_ERROR_NOT_SUPPORTED;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

/* The GPU behind a handle; NULL for anything that is not one of ours (a truncated 64-bit handle). */
static const struct gpu_answer *gpu(nvmlDevice_t handle) {
    const struct gpu_answer *answer = (const struct gpu_answer *)handle;
    if (GPU_COUNT == 0 || answer < &GPUS[0] || answer >= &GPUS[GPU_COUNT]) return NULL;
    return answer;
}

/* The common prologue of a device query: initialized, a real handle, no injected failure. */
#define DEVICE_QUERY(handle, query) \
    REQUIRE_INIT(); \
    const struct gpu_answer *g = gpu(handle); \
    if (g == NULL) return NVML_ERROR_INVALID_ARGUMENT; \
    if (g->query_error[query] != 0) return (nvmlReturn_t)g->query_error[query]

static nvmlReturn_t init(void) { initialized = (INIT_RESULT == NVML_SUCCESS); return INIT_RESULT; }
nvmlReturn_t nvmlInit(void) { return init(); }
nvmlReturn_t nvmlShutdown(void) { REQUIRE_INIT(); initialized = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {  /* NVML's own wording for the codes the tests use */
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "Driver/library version mismatch";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned int length) {
    REQUIRE_INIT();
    return copy_text(DRIVER_VERSION, out, length);
}

/* _v1 counting and indexing: GPUs NVML has no permission to talk to are left out (nvml.h, API 9). */
static int accessible(int index) { return GPUS[index].handle_result != NVML_ERROR_NO_PERMISSION; }

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) {
    REQUIRE_INIT();
    *count = 0;
    for (int i = 0; i < GPU_COUNT; i++) *count += accessible(i);
    return NVML_SUCCESS;
}

static nvmlReturn_t handle_of(int index, nvmlDevice_t *handle) {
    if (GPUS[index].handle_result != NVML_SUCCESS) return (nvmlReturn_t)GPUS[index].handle_result;
    *handle = (nvmlDevice_t)&GPUS[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *handle) {
    REQUIRE_INIT();
    for (int i = 0; i < GPU_COUNT; i++)
        if (accessible(i) && index-- == 0) return handle_of(i, handle);
    return NVML_ERROR_INVALID_ARGUMENT;
}

#if NVML_FAKE_API >= 5
nvmlReturn_t nvmlInit_v2(void) { return init(); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    REQUIRE_INIT();
    *count = GPU_COUNT;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *handle) {
    REQUIRE_INIT();
    if (index >= GPU_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
    return handle_of((int)index, handle);
}
#endif

#if NVML_FAKE_API >= 9
static nvmlReturn_t cuda_driver_version(int *version) {
    REQUIRE_INIT();
    if (CUDA_DRIVER_VERSION < 0) return NVML_ERROR_NOT_SUPPORTED;
    *version = CUDA_DRIVER_VERSION;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) { return cuda_driver_version(version); }

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t h, int *major, int *minor) {
    DEVICE_QUERY(h, Q_COMPUTE_CAPABILITY);
    if (g->cc_major < 0) return NVML_ERROR_NOT_SUPPORTED;
    *major = g->cc_major; *minor = g->cc_minor;
    return NVML_SUCCESS;
}
#endif

#if NVML_FAKE_API >= 11
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return cuda_driver_version(version); }
#endif

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *out, unsigned int n) {
    DEVICE_QUERY(h, Q_NAME);
    return copy_text(g->name, out, n);
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *out, unsigned int n) {
    DEVICE_QUERY(h, Q_UUID);
    return copy_text(g->uuid, out, n);
}
nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t h, char *out, unsigned int n) {
    DEVICE_QUERY(h, Q_SERIAL);
    return copy_text(g->serial, out, n);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *memory) {
    DEVICE_QUERY(h, Q_MEMORY);
    if (g->memory_total_mib < 0) return NVML_ERROR_NOT_SUPPORTED;
    memory->total = (unsigned long long)g->memory_total_mib << 20;
    memory->free = memory->used = 0;
    return NVML_SUCCESS;
}

static nvmlReturn_t modes(int current, int pending, unsigned int *out_current, unsigned int *out_pending) {
    if (current < 0 || pending < 0) return NVML_ERROR_NOT_SUPPORTED;
    *out_current = (unsigned int)current; *out_pending = (unsigned int)pending;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t h, nvmlEnableState_t *current, nvmlEnableState_t *pending) {
    DEVICE_QUERY(h, Q_ECC);
    unsigned int c, p;
    nvmlReturn_t result = modes(g->ecc_current, g->ecc_pending, &c, &p);
    if (result == NVML_SUCCESS) { *current = (nvmlEnableState_t)c; *pending = (nvmlEnableState_t)p; }
    return result;
}

#if NVML_FAKE_API >= 11
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t h, unsigned int *current, unsigned int *pending) {
    DEVICE_QUERY(h, Q_MIG);
    return modes(g->mig_current, g->mig_pending, current, pending);
}
#endif

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t h, nvmlEnableState_t *mode) {
    DEVICE_QUERY(h, Q_PERSISTENCE);
    if (g->persistence < 0) return NVML_ERROR_NOT_SUPPORTED;
    *mode = (nvmlEnableState_t)g->persistence;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t h, unsigned int *limit) {
    DEVICE_QUERY(h, Q_POWER);
    if (g->power_limit_mw < 0) return NVML_ERROR_NOT_SUPPORTED;
    *limit = (unsigned int)g->power_limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t h, nvmlClockType_t type, unsigned int *clock) {
    DEVICE_QUERY(h, Q_CLOCKS);
    int value = type == NVML_CLOCK_SM ? g->max_clock_sm : type == NVML_CLOCK_MEM ? g->max_clock_mem : -1;
    if (value < 0) return NVML_ERROR_NOT_SUPPORTED;
    *clock = (unsigned int)value;
    return NVML_SUCCESS;
}

/* The 16-byte legacy bus id: "0000:94:00.0" for "00000000:94:00.0" (domain in 4 hex digits). */
static void legacy_bus_id(const char *bus_id, char out[16]) {
    const char *colon = strchr(bus_id, ':');
    const char *start = (colon != NULL && colon - bus_id > 4) ? colon - 4 : bus_id;
    memset(out, 0, 16);
    strncpy(out, start, 15);
}

#if NVML_FAKE_API >= 9
/* Fills the whole 68-byte struct: a caller passing the 52-byte one of old drivers is overrun. */
static nvmlReturn_t pci_info(nvmlDevice_t h, nvmlPciInfo_t *pci) {
    DEVICE_QUERY(h, Q_PCI);
    if (g->pci_bus_id == NULL) return NVML_ERROR_NOT_SUPPORTED;
    memset(pci, 0, sizeof *pci);
    legacy_bus_id(g->pci_bus_id, pci->busIdLegacy);
    strncpy(pci->busId, g->pci_bus_id, sizeof pci->busId - 1);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t h, nvmlPciInfo_t *pci) { return pci_info(h, pci); }
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t h, nvmlPciInfo_t *pci) { return pci_info(h, pci); }
#else
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t h, nvmlPciInfo_legacy_t *pci) {
    DEVICE_QUERY(h, Q_PCI);
    if (g->pci_bus_id == NULL) return NVML_ERROR_NOT_SUPPORTED;
    memset(pci, 0, sizeof *pci);
    legacy_bus_id(g->pci_bus_id, pci->busId);
    return NVML_SUCCESS;
}
#endif
