//! This process's threads: ids, the list of live ones, names. A thread's id is its Mach port
//! name in this task (what `pthread_mach_thread_np` gives), which the sampler's Mach calls
//! take directly.

use super::api;

/// The calling thread's id (its Mach port name; no reference is added).
pub fn gettid() -> i32 {
    // SAFETY: pthread_self is always valid; the call only reads it.
    unsafe { api::pthread_mach_thread_np(libc::pthread_self()) as i32 }
}

/// This process's id.
pub fn getpid() -> i32 {
    // SAFETY: no arguments, no failure.
    unsafe { libc::getpid() }
}

/// Calls `f` with the id of every live thread of this task (`task_threads`). Returns whether
/// the list was complete (`false` if the kernel refused it).
///
/// Not while any thread is suspended: the list is memory the kernel maps into the task.
pub fn for_each_thread(mut f: impl FnMut(i32)) -> bool {
    let task = api::task_self();
    let mut list: *mut api::mach_port_t = core::ptr::null_mut();
    let mut count: api::mach_msg_type_number_t = 0;
    // SAFETY: both out-parameters are writable; on success the kernel maps `count` port
    // names at `list`, with a send right for each, all released below.
    if unsafe { api::task_threads(task, &mut list, &mut count) } != api::KERN_SUCCESS {
        return false;
    }
    if list.is_null() {
        return true;
    }
    // SAFETY: the kernel wrote `count` names at `list`.
    let names = unsafe { core::slice::from_raw_parts(list, count as usize) };
    for &name in names {
        f(name as i32);
        // SAFETY: the send right task_threads gave us for this name, released once.
        unsafe { api::mach_port_deallocate(task, name) };
    }
    // SAFETY: the array task_threads mapped, unmapped once; nothing refers to it any more.
    unsafe {
        api::mach_vm_deallocate(
            task,
            list as u64,
            count as u64 * core::mem::size_of::<api::mach_port_t>() as u64,
        )
    };
    true
}

/// Writes thread `tid`'s name (what `pthread_setname_np` set, from `THREAD_EXTENDED_INFO`;
/// ASCII kept and anything else as `?`, cut to 15 bytes) into `out` and returns its length
/// (0 if it has none).
pub fn thread_name(tid: i32, out: &mut [u8; 16]) -> usize {
    let Some(info) = api::thread_info_of::<api::thread_extended_info>(
        tid as api::mach_port_t,
        api::THREAD_EXTENDED_INFO,
    ) else {
        return 0;
    };
    let mut n = 0;
    for (dst, &c) in out
        .iter_mut()
        .take(15)
        .zip(info.pth_name.iter().take_while(|&&c| c != 0))
    {
        *dst = if (0x20..0x7f).contains(&c) { c } else { b'?' };
        n += 1;
    }
    n
}
