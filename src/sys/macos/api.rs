//! The Mach, dyld and pthread functions the macOS backend calls, declared here (the `libc`
//! crate lacks several, or marks them deprecated), with the constants and structures they
//! take from `<mach/*.h>` and `<mach-o/dyld.h>`.
#![allow(non_camel_case_types, non_upper_case_globals)]

use core::ffi::{c_char, c_void};

pub type kern_return_t = i32;
pub type mach_port_t = u32;
pub type natural_t = u32;
pub type integer_t = i32;
pub type mach_msg_type_number_t = natural_t;

/// `KERN_SUCCESS`.
pub const KERN_SUCCESS: kern_return_t = 0;
/// `MACH_PORT_RIGHT_SEND`.
pub const MACH_PORT_RIGHT_SEND: u32 = 0;

/// `THREAD_BASIC_INFO` (a [`thread_basic_info`]).
pub const THREAD_BASIC_INFO: u32 = 3;
/// `THREAD_EXTENDED_INFO` (a [`thread_extended_info`]).
pub const THREAD_EXTENDED_INFO: u32 = 5;

/// `time_value_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct time_value_t {
    pub seconds: integer_t,
    pub microseconds: integer_t,
}

/// `thread_basic_info_data_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct thread_basic_info {
    pub user_time: time_value_t,
    pub system_time: time_value_t,
    pub cpu_usage: integer_t,
    pub policy: integer_t,
    pub run_state: integer_t,
    pub flags: integer_t,
    pub suspend_count: integer_t,
    pub sleep_time: integer_t,
}

// SAFETY: integers only; all zero is valid.
unsafe impl crate::sys::mem::Zeroed for thread_basic_info {}

/// `thread_extended_info_data_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct thread_extended_info {
    pub pth_user_time: u64,
    pub pth_system_time: u64,
    pub pth_cpu_usage: i32,
    pub pth_policy: i32,
    pub pth_run_state: i32,
    pub pth_flags: i32,
    pub pth_sleep_time: i32,
    pub pth_curpri: i32,
    pub pth_priority: i32,
    pub pth_maxpriority: i32,
    pub pth_name: [u8; 64],
}

// SAFETY: integers and bytes only; all zero is valid.
unsafe impl crate::sys::mem::Zeroed for thread_extended_info {}

/// What `thread_info` says of `thread` for `flavor`, whose answer is a `T` (its size, in
/// `integer_t`s, is the count passed); `None` if the kernel refuses (the thread has exited).
pub fn thread_info_of<T: crate::sys::mem::Zeroed>(thread: mach_port_t, flavor: u32) -> Option<T> {
    // SAFETY: T is valid all zero (Zeroed).
    let mut info: T = unsafe { core::mem::zeroed() };
    let mut count = (core::mem::size_of::<T>() / 4) as mach_msg_type_number_t;
    // SAFETY: `info` is writable for `count` integers, all the kernel writes.
    let kr = unsafe { thread_info(thread, flavor, (&mut info as *mut T).cast(), &mut count) };
    (kr == KERN_SUCCESS).then_some(info)
}

/// `x86_THREAD_STATE64` and its size in `natural_t`s.
#[cfg(target_arch = "x86_64")]
pub const THREAD_STATE_FLAVOR: i32 = 4;
/// `ARM_THREAD_STATE64` and its size in `natural_t`s.
#[cfg(target_arch = "aarch64")]
pub const THREAD_STATE_FLAVOR: i32 = 6;

/// `x86_thread_state64_t`: rax, rbx, rcx, rdx, rdi, rsi, rbp, rsp, r8-r15, rip, rflags, cs,
/// fs, gs.
#[cfg(target_arch = "x86_64")]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadState {
    pub r: [u64; 21],
}

/// `arm_thread_state64_t`: x0-x28, fp, lr, sp, pc, cpsr (and padding or, on arm64e, flags).
#[cfg(target_arch = "aarch64")]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadState {
    pub x: [u64; 29],
    pub fp: u64,
    pub lr: u64,
    pub sp: u64,
    pub pc: u64,
    pub cpsr: u32,
    pub flags: u32,
}

/// The size of [`ThreadState`] in `natural_t`s (`*_THREAD_STATE64_COUNT`).
pub const THREAD_STATE_COUNT: mach_msg_type_number_t =
    (core::mem::size_of::<ThreadState>() / 4) as mach_msg_type_number_t;

/// `dyld`'s image callbacks: the image's Mach-O header and its slide.
pub type ImageCallback = unsafe extern "C" fn(header: *const c_void, slide: isize);

extern "C" {
    /// The task's own port (what `mach_task_self()` returns).
    pub static mach_task_self_: mach_port_t;

    pub fn task_threads(
        task: mach_port_t,
        threads: *mut *mut mach_port_t,
        count: *mut mach_msg_type_number_t,
    ) -> kern_return_t;
    pub fn thread_suspend(thread: mach_port_t) -> kern_return_t;
    pub fn thread_resume(thread: mach_port_t) -> kern_return_t;
    pub fn thread_get_state(
        thread: mach_port_t,
        flavor: i32,
        state: *mut natural_t,
        count: *mut mach_msg_type_number_t,
    ) -> kern_return_t;
    pub fn thread_info(
        thread: mach_port_t,
        flavor: u32,
        info: *mut integer_t,
        count: *mut mach_msg_type_number_t,
    ) -> kern_return_t;
    pub fn mach_port_deallocate(task: mach_port_t, name: mach_port_t) -> kern_return_t;
    pub fn mach_port_mod_refs(
        task: mach_port_t,
        name: mach_port_t,
        right: u32,
        delta: i32,
    ) -> kern_return_t;
    pub fn mach_vm_deallocate(task: mach_port_t, address: u64, size: u64) -> kern_return_t;
    pub fn mach_vm_read_overwrite(
        task: mach_port_t,
        address: u64,
        size: u64,
        data: u64,
        out_size: *mut u64,
    ) -> kern_return_t;

    pub fn clock_gettime_nsec_np(clock: libc::clockid_t) -> u64;

    pub fn pthread_mach_thread_np(thread: libc::pthread_t) -> mach_port_t;
    pub fn pthread_from_mach_thread_np(port: mach_port_t) -> libc::pthread_t;
    pub fn pthread_get_stackaddr_np(thread: libc::pthread_t) -> *mut c_void;

    pub fn _dyld_image_count() -> u32;
    pub fn _dyld_get_image_header(index: u32) -> *const c_void;
    pub fn _dyld_get_image_name(index: u32) -> *const c_char;
    pub fn _dyld_register_func_for_add_image(f: ImageCallback);
    pub fn _dyld_register_func_for_remove_image(f: ImageCallback);
}

/// This task's port.
pub fn task_self() -> mach_port_t {
    // SAFETY: set by the system before any code of the process runs, never written after.
    unsafe { mach_task_self_ }
}
