/* A stand-in for Windows' bcryptprimitives.dll, for test runs under Wine
 * only: Rust's standard library imports ProcessPrng from it (Windows 10 and
 * later have it), and Wine 8 (Debian bookworm) does not ship it. This one
 * fills the buffer from RtlGenRandom (advapi32's SystemFunction036), which
 * Wine has. `make test-windows` builds it and puts it on WINEPATH; nothing
 * installed or shipped uses it. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG n = length > 0x10000000u ? 0x10000000u : (ULONG)length;
        if (!SystemFunction036(data, n)) {
            return FALSE;
        }
        data += n;
        length -= n;
    }
    return TRUE;
}
