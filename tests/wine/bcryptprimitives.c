/* ProcessPrng, the one function of Windows 10's bcryptprimitives.dll that Rust's std
 * imports (for its random hash keys). Wine 8 (Debian 12's wine) lacks the DLL, so a
 * Windows hvsim.exe would not start under it; tests/windows_binary.rs builds this file
 * with mingw-w64 into the test's own Wine prefix only. A real Windows has the DLL: this
 * is never shipped. It draws from RtlGenRandom (advapi32's SystemFunction036), which Wine
 * has, as the real ProcessPrng draws from the system's generator. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
