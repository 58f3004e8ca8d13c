//! Lowering a background thread's disk priority.
//!
//! The checkpointer writes pages back into the database file at random
//! places and syncs them, while every send waits on the sync of the log's
//! appends. On a scheduler that honours I/O classes (mq-deadline, BFQ), the
//! idle class lets the device serve the log first; elsewhere it is a no-op.
//! Idle requests are not starved for ever: mq-deadline serves a waiting
//! request after `prio_aging_expire` (10 000 ms by default), so a
//! checkpoint under constant load is slower, not stuck.
//!
//! Written here, not taken from a crate: it is one system call that `libc`
//! already declares, with two constants from `linux/ioprio.h`.

/// Puts the calling thread in the idle I/O class; logs and carries on if
/// the kernel refuses.
pub(crate) fn idle_for_this_thread() {
    #[cfg(target_os = "linux")]
    {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        const IOPRIO_CLASS_IDLE: libc::c_int = 3;
        const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
        // SAFETY: ioprio_set takes three integers; `who` 0 is the calling
        // thread, and nothing is read from or written to memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
            )
        };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the checkpointer's I/O priority"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_calling_thread_ends_up_in_the_idle_class() {
        std::thread::spawn(|| {
            super::idle_for_this_thread();
            // SAFETY: ioprio_get reads the calling thread's priority.
            let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
            assert_eq!(prio >> 13, 3, "ioprio {prio}");
        })
        .join()
        .unwrap();
    }
}
