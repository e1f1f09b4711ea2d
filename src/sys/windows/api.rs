//! The Win32 and NT functions vignette calls, declared by hand (kernel32 and ntdll only, so
//! the core keeps its short dependency list), with the few structures they take.
#![allow(non_snake_case, clippy::upper_case_acronyms, missing_docs)]

use core::ffi::c_void;

pub type HANDLE = *mut c_void;
pub type BOOL = i32;

pub const INVALID_HANDLE_VALUE: HANDLE = usize::MAX as HANDLE;
pub const MEM_COMMIT: u32 = 0x1000;
pub const MEM_RESERVE: u32 = 0x2000;
pub const MEM_RELEASE: u32 = 0x8000;
pub const PAGE_READWRITE: u32 = 0x04;
pub const TH32CS_SNAPTHREAD: u32 = 0x4;
pub const THREAD_SUSPEND_RESUME: u32 = 0x0002;
pub const THREAD_GET_CONTEXT: u32 = 0x0008;
pub const THREAD_QUERY_INFORMATION: u32 = 0x0040;
pub const THREAD_QUERY_LIMITED_INFORMATION: u32 = 0x0800;
pub const INFINITE: u32 = u32::MAX;
pub const WAIT_OBJECT_0: u32 = 0;
pub const CONTEXT_AMD64: u32 = 0x0010_0000;
pub const CONTEXT_CONTROL: u32 = CONTEXT_AMD64 | 0x1;
pub const CONTEXT_INTEGER: u32 = CONTEXT_AMD64 | 0x2;
pub const CREATE_WAITABLE_TIMER_HIGH_RESOLUTION: u32 = 0x2;
pub const TIMER_ALL_ACCESS: u32 = 0x1F_0003;
/// `ThreadBasicInformation` for `NtQueryInformationThread`.
pub const THREAD_BASIC_INFORMATION_CLASS: u32 = 0;
/// `ThreadNameInformation` (Windows 10 1607 and later).
pub const THREAD_NAME_INFORMATION_CLASS: u32 = 38;

/// `THREADENTRY32`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct THREADENTRY32 {
    pub dwSize: u32,
    pub cntUsage: u32,
    pub th32ThreadID: u32,
    pub th32OwnerProcessID: u32,
    pub tpBasePri: i32,
    pub tpDeltaPri: i32,
    pub dwFlags: u32,
}

/// `MODULEINFO`.
#[repr(C)]
pub struct MODULEINFO {
    pub lpBaseOfDll: *mut c_void,
    pub SizeOfImage: u32,
    pub EntryPoint: *mut c_void,
}

/// `FILETIME`: 100-nanosecond units.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FILETIME {
    pub low: u32,
    pub high: u32,
}

impl FILETIME {
    pub fn to_u64(self) -> u64 {
        (self.high as u64) << 32 | self.low as u64
    }
}

/// `THREAD_BASIC_INFORMATION`.
#[repr(C)]
pub struct THREAD_BASIC_INFORMATION {
    pub ExitStatus: i32,
    pub TebBaseAddress: *mut c_void,
    pub ClientId: [usize; 2],
    pub AffinityMask: usize,
    pub Priority: i32,
    pub BasePriority: i32,
}

/// The x64 `CONTEXT` (1232 bytes, 16-byte aligned); only the integer and control registers
/// are named.
#[repr(C, align(16))]
pub struct CONTEXT {
    pub home: [u64; 6],
    pub ContextFlags: u32,
    pub MxCsr: u32,
    pub seg: [u16; 6],
    pub EFlags: u32,
    pub dr: [u64; 6],
    /// rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15: Windows' register numbering.
    pub gpr: [u64; 16],
    pub Rip: u64,
    pub rest: [u8; 1232 - 256],
}

const _: () = assert!(core::mem::size_of::<CONTEXT>() == 1232);
const _: () = assert!(core::mem::offset_of!(CONTEXT, gpr) == 0x78);
const _: () = assert!(core::mem::offset_of!(CONTEXT, Rip) == 0xf8);

pub type ThreadStart = unsafe extern "system" fn(*mut c_void) -> u32;

#[link(name = "kernel32")]
extern "system" {
    pub fn GetCurrentProcess() -> HANDLE;
    pub fn GetCurrentProcessId() -> u32;
    pub fn GetCurrentThreadId() -> u32;
    pub fn GetLastError() -> u32;
    pub fn OpenThread(access: u32, inherit: BOOL, tid: u32) -> HANDLE;
    pub fn CloseHandle(h: HANDLE) -> BOOL;
    pub fn SuspendThread(h: HANDLE) -> u32;
    pub fn ResumeThread(h: HANDLE) -> u32;
    pub fn GetThreadContext(h: HANDLE, ctx: *mut CONTEXT) -> BOOL;
    pub fn ReadProcessMemory(
        process: HANDLE,
        base: *const c_void,
        buf: *mut c_void,
        size: usize,
        read: *mut usize,
    ) -> BOOL;
    pub fn VirtualAlloc(addr: *mut c_void, size: usize, kind: u32, protect: u32) -> *mut c_void;
    pub fn VirtualFree(addr: *mut c_void, size: usize, kind: u32) -> BOOL;
    pub fn CreateToolhelp32Snapshot(flags: u32, pid: u32) -> HANDLE;
    pub fn Thread32First(snapshot: HANDLE, entry: *mut THREADENTRY32) -> BOOL;
    pub fn Thread32Next(snapshot: HANDLE, entry: *mut THREADENTRY32) -> BOOL;
    pub fn QueryPerformanceCounter(count: *mut i64) -> BOOL;
    pub fn QueryPerformanceFrequency(freq: *mut i64) -> BOOL;
    pub fn GetSystemTimePreciseAsFileTime(t: *mut FILETIME);
    pub fn GetThreadTimes(
        h: HANDLE,
        creation: *mut FILETIME,
        exit: *mut FILETIME,
        kernel: *mut FILETIME,
        user: *mut FILETIME,
    ) -> BOOL;
    pub fn Sleep(ms: u32);
    pub fn CreateWaitableTimerExW(
        attrs: *mut c_void,
        name: *const u16,
        flags: u32,
        access: u32,
    ) -> HANDLE;
    pub fn SetWaitableTimer(
        timer: HANDLE,
        due: *const i64,
        period: i32,
        routine: *mut c_void,
        arg: *mut c_void,
        resume: BOOL,
    ) -> BOOL;
    pub fn WaitForSingleObject(h: HANDLE, ms: u32) -> u32;
    pub fn CreateThread(
        attrs: *mut c_void,
        stack: usize,
        start: ThreadStart,
        param: *mut c_void,
        flags: u32,
        tid: *mut u32,
    ) -> HANDLE;
    pub fn K32EnumProcessModules(
        process: HANDLE,
        modules: *mut HANDLE,
        bytes: u32,
        needed: *mut u32,
    ) -> BOOL;
    pub fn K32GetModuleInformation(
        process: HANDLE,
        module: HANDLE,
        info: *mut MODULEINFO,
        bytes: u32,
    ) -> BOOL;
    pub fn GetModuleFileNameW(module: HANDLE, name: *mut u16, size: u32) -> u32;
}

/// `PLDR_DLL_NOTIFICATION_FUNCTION`.
pub type DllNotification = unsafe extern "system" fn(u32, *const c_void, *mut c_void);

#[link(name = "ntdll")]
extern "system" {
    pub fn LdrRegisterDllNotification(
        flags: u32,
        f: DllNotification,
        context: *mut c_void,
        cookie: *mut *mut c_void,
    ) -> i32;
    pub fn LdrUnregisterDllNotification(cookie: *mut c_void) -> i32;
    pub fn NtQueryInformationThread(
        h: HANDLE,
        class: u32,
        info: *mut c_void,
        len: u32,
        ret: *mut u32,
    ) -> i32;
}
