/* A stand-in for Windows' bcryptprimitives.dll, which Debian's wine 8 lacks and Rust's std
 * imports (ProcessPrng, for HashMap keys). Only for running vignette's tests under wine: it
 * forwards to RtlGenRandom (advapi32's SystemFunction036), which wine has. Built by
 * scripts/wine/setup. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
