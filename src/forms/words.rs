//! A connection test in words a non-engineer understands.

use super::render::TestView;
use crate::pb::v1::{self, ErrorCategory, StageStatus, TestStage};

fn stage_name(stage: i32) -> &'static str {
    match TestStage::try_from(stage).unwrap_or(TestStage::Unspecified) {
        TestStage::Tunnel => "Open the SSH tunnel",
        TestStage::Resolve => "Find the server",
        TestStage::Connect => "Reach the server",
        TestStage::Tls => "Secure the connection",
        TestStage::Authenticate => "Sign in",
        TestStage::Probe => "Talk to the database",
        TestStage::Authorize => "Check access",
        TestStage::Unspecified => "Check",
    }
}

/// What went wrong, by category.
pub fn category_words(category: i32) -> &'static str {
    match ErrorCategory::try_from(category).unwrap_or(ErrorCategory::Unspecified) {
        ErrorCategory::Dns => "We could not find that host. Check the host name.",
        ErrorCategory::Unreachable => {
            "We could not reach the server. Check the host and port, and that the server accepts connections from us."
        }
        ErrorCategory::Tls => {
            "The server's certificate is not trusted, or the secure connection failed. Check the TLS settings and the CA certificate."
        }
        ErrorCategory::Auth => {
            "The server refused the user name or password. Check them and try again."
        }
        ErrorCategory::Permission => {
            "Signed in, but this user may not use the database. Ask its administrator for access."
        }
        ErrorCategory::Timeout => {
            "The server took too long to answer. Check the host and port, then try again."
        }
        ErrorCategory::Protocol => {
            "The server answered in a way we did not expect. Check that the host and port point at the right kind of server."
        }
        ErrorCategory::Config => "Some settings are not valid. Check the form.",
        ErrorCategory::TunnelUnreachable => {
            "We could not reach the SSH bastion. Check its host and port."
        }
        ErrorCategory::TunnelHostKey => {
            "The SSH bastion's host key does not match the pinned fingerprint."
        }
        ErrorCategory::TunnelAuth => {
            "The SSH bastion refused the user or key. Check the tunnel's credentials."
        }
        ErrorCategory::TunnelForward => {
            "The SSH bastion could not reach the database. Check the database host and port as the bastion sees them."
        }
        ErrorCategory::None => "",
        _ => "Something went wrong on our side. Try again in a moment.",
    }
}

/// The page's view of a test result.
pub fn test_view(result: &v1::TestConnectionResponse) -> TestView {
    let failed_words = category_words(result.error_category);
    let stages = result
        .stages
        .iter()
        .map(|stage| {
            let status = StageStatus::try_from(stage.status).unwrap_or(StageStatus::Unspecified);
            let passed = match status {
                StageStatus::Ok => Some(true),
                StageStatus::Failed => Some(false),
                _ => None,
            };
            let words = if passed == Some(false) {
                failed_words.to_owned()
            } else {
                String::new()
            };
            (stage_name(stage.stage).to_owned(), passed, words)
        })
        .collect();
    TestView {
        success: result.success,
        headline: if result.success {
            "Connection test passed".into()
        } else {
            format!("Connection test failed. {failed_words}")
        },
        stages,
    }
}
