//! How a client uses a connection's tunnel: an OpenSSH command line that
//! opens it and the local endpoint to connect to while it runs.

use super::route::bastion_port;
use crate::app::egress::Target;
use crate::pb::v1;

/// `host` as the host part of `ssh -L`: an IPv6 literal in brackets.
fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The `ssh` command line that forwards the local endpoint to `database`
/// through `tunnel`, and that endpoint. Every value in it was checked to
/// hold only letters, digits, `.`, `-`, `_` (and `:` in an IP literal), so
/// it needs no quoting. With a key, `-i` names a file the client writes the
/// resolved key into.
pub(in crate::app) fn ssh_command(
    tunnel: &v1::SshTunnel,
    database: &Target,
    with_key: bool,
) -> (String, String) {
    let local_port = u16::try_from(tunnel.local_port)
        .ok()
        .filter(|port| *port > 0)
        .unwrap_or(database.port);
    let identity = if with_key {
        " -i \"$CONNVAULT_TUNNEL_KEY_FILE\" -o IdentitiesOnly=yes"
    } else {
        ""
    };
    let command = format!(
        "ssh -N -o ExitOnForwardFailure=yes -o StrictHostKeyChecking=yes{identity} -L 127.0.0.1:{local_port}:{}:{} -p {} {}@{}",
        bracketed(&database.host),
        database.port,
        bastion_port(tunnel),
        tunnel.user,
        tunnel.host,
    );
    (command, format!("127.0.0.1:{local_port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_forwards_the_local_port_to_the_database_through_the_bastion() {
        let tunnel = v1::SshTunnel {
            host: "bastion.example".into(),
            user: "tunnel".into(),
            ..Default::default()
        };
        let database = Target {
            field: "config.host".into(),
            host: "fd00::5".into(),
            port: 5432,
        };
        let (command, local) = ssh_command(&tunnel, &database, true);
        assert_eq!(
            command,
            "ssh -N -o ExitOnForwardFailure=yes -o StrictHostKeyChecking=yes -i \"$CONNVAULT_TUNNEL_KEY_FILE\" -o IdentitiesOnly=yes -L 127.0.0.1:5432:[fd00::5]:5432 -p 22 tunnel@bastion.example"
        );
        assert_eq!(local, "127.0.0.1:5432");
        let other = v1::SshTunnel {
            port: 2222,
            local_port: 15432,
            ..tunnel
        };
        let (command, local) = ssh_command(&other, &database, false);
        assert!(
            command.ends_with("-L 127.0.0.1:15432:[fd00::5]:5432 -p 2222 tunnel@bastion.example"),
            "{command}"
        );
        assert!(!command.contains("-i "), "{command}");
        assert_eq!(local, "127.0.0.1:15432");
    }
}
