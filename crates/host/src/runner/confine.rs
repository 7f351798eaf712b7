//! Confining a runner before its plugin's first byte runs: resource limits,
//! `no_new_privs`, Landlock (read-only access to the system's libraries,
//! certificates and name-service files, nothing else) and a seccomp filter
//! refusing new processes, `exec`, `ptrace` and signals to other processes.
//!
//! Everything here is applied on the runner's only thread, before it starts
//! any other: Landlock and seccomp bind the calling thread and the threads
//! it creates afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::wire::Setup;

/// The Landlock ABI whose rights this runner asks for: every file-system
/// right it defines is handled (denied unless a rule allows it).
const LANDLOCK_ABI: ABI = ABI::V6;

/// What every runner may read: shared libraries and the loader's cache,
/// CA certificates, name resolution, time zones, and the harmless devices.
pub(crate) const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/pki",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/sys/devices/system/cpu",
];

/// How the runner was confined, as it reports it to the host.
#[derive(Debug)]
pub(crate) struct Confinement {
    /// Landlock's state.
    pub(crate) landlock: String,
    /// Whether the seccomp filter is installed.
    pub(crate) seccomp: bool,
    /// Whether `no_new_privs` is set.
    pub(crate) no_new_privs: bool,
}

/// Sets the resource limits of `setup` (soft and hard: the runner cannot
/// raise them back, and the seccomp filter refuses to try).
pub(crate) fn limit_resources(setup: &Setup) -> Result<(), String> {
    for (resource, name, value) in [
        (libc::RLIMIT_AS, "address space", setup.memory_bytes),
        (libc::RLIMIT_NOFILE, "open files", setup.open_files),
        (libc::RLIMIT_CPU, "CPU time", setup.cpu_secs),
        // A crashing plugin leaves no core file holding secrets.
        (libc::RLIMIT_CORE, "core size", 0),
    ] {
        if value == 0 && resource != libc::RLIMIT_CORE {
            continue;
        }
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass; no memory is shared.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(format!(
                "cannot limit the {name} to {value}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Applies `no_new_privs`, Landlock and seccomp.
pub(crate) fn confine(setup: &Setup) -> Result<Confinement, String> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    let landlock = landlock(setup)?;
    seccomp()?;
    // SAFETY: prctl with integer arguments only.
    let no_new_privs = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
    Ok(Confinement {
        landlock,
        seccomp: true,
        no_new_privs,
    })
}

/// Restricts the file system to reading the system paths and `setup`'s
/// extra paths; every write, and every other read, is refused. Also scopes
/// signals and abstract Unix sockets to the runner itself.
///
/// The plugin's memfd needs no rule: Landlock lets a process open the files
/// of the kernel's internal mounts (a memfd, reached through
/// `/proc/self/fd`) it already holds a descriptor of, and nothing else.
fn landlock(setup: &Setup) -> Result<String, String> {
    let abi = LANDLOCK_ABI;
    let refused = |error: landlock::RulesetError| format!("Landlock: {error}");
    let read: Vec<PathBuf> = SYSTEM_READ_PATHS
        .iter()
        .map(PathBuf::from)
        .chain(setup.read_paths.iter().map(PathBuf::from))
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(refused)?
        .scope(Scope::from_all(abi))
        .map_err(refused)?
        .create()
        .map_err(refused)?
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))
        .map_err(refused)?
        .add_rules(path_beneath_rules(
            [Path::new("/dev/null")],
            AccessFs::from_file(abi),
        ))
        .map_err(refused)?
        .restrict_self()
        .map_err(refused)?;
    let kernel = kernel_abi();
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => format!("enforced (kernel ABI {kernel})"),
        RulesetStatus::PartiallyEnforced => format!("partially enforced (kernel ABI {kernel})"),
        RulesetStatus::NotEnforced => "not supported by this kernel".to_owned(),
    })
}

/// The kernel's Landlock ABI version; 0 when it has none.
pub(crate) fn kernel_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    version.max(0)
}

/// Installs the seccomp filters: new processes, `exec`, tracing and reading
/// other processes' memory fail with `EPERM`, as do signals to any process
/// but the runner and raising a resource limit; `clone3` fails with
/// `ENOSYS` so that the C library falls back to `clone`, whose flags the
/// filter can see (threads are allowed, processes are not).
fn seccomp() -> Result<(), String> {
    let arch = target_arch()?;
    let refused = |error: seccompiler::Error| format!("seccomp: {error}");
    let condition = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
            .and_then(|condition| SeccompRule::new(vec![condition]))
            .map_err(|error| refused(error.into()))
    };
    let own_pid = u64::from(std::process::id());
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_tkill,
        libc::SYS_kcmp,
        libc::SYS_setrlimit,
    ] {
        denied.insert(call, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    for call in [libc::SYS_fork, libc::SYS_vfork] {
        denied.insert(call, Vec::new());
    }
    // clone without CLONE_THREAD makes a process.
    denied.insert(
        libc::SYS_clone,
        vec![condition(
            0,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?],
    );
    // Signals only to the runner itself (abort() raises SIGABRT on itself).
    for call in [libc::SYS_kill, libc::SYS_tgkill, libc::SYS_rt_sigqueueinfo] {
        denied.insert(call, vec![condition(0, SeccompCmpOp::Ne, own_pid)?]);
    }
    denied.insert(
        libc::SYS_rt_tgsigqueueinfo,
        vec![condition(0, SeccompCmpOp::Ne, own_pid)?],
    );
    // prlimit64 may read limits (new_limit NULL), not set them.
    denied.insert(
        libc::SYS_prlimit64,
        vec![condition(2, SeccompCmpOp::Ne, 0)?],
    );
    let eperm: BpfProgram = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|error| refused(error.into()))?;
    let enosys: BpfProgram = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|error| refused(error.into()))?;
    seccompiler::apply_filter(&enosys).map_err(refused)?;
    seccompiler::apply_filter(&eperm).map_err(refused)?;
    Ok(())
}

fn target_arch() -> Result<seccompiler::TargetArch, String> {
    if cfg!(target_arch = "x86_64") {
        Ok(seccompiler::TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(seccompiler::TargetArch::aarch64)
    } else {
        Err("seccomp: this architecture has no filter".to_owned())
    }
}
