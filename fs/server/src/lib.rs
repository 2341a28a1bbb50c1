//! The 9P server: a session core that owns the protocol, a tokio server
//! over any byte stream, and a framework for synthetic file trees.
//!
//! # Layout
//!
//! - [`tree`]: the [`Node`]/[`Handle`] traits a tree implements and the
//!   dialect-neutral types they use ([`Attr`], [`OpenMode`], ...).
//! - `session`: fids, walks, open modes, offsets, directory paging; one
//!   function per message, checks first (lib9p's `sX`), effects applied with
//!   the reply (lib9p's `rX`).
//! - `conn`: one connection: frames in, tasks out, Tversion and Tflush,
//!   per-connection memory budgets.
//! - [`synth`]: static directories, generated directories, text and ctl
//!   files, the clone idiom.
//! - [`ids`]: uid and gid to names (NSS).
//! - [`listen`]: listeners for dial strings (`tcp!host!port`, `unix!/path`).
//! - [`trace`]: one line per message for `-D`.
//!
//! # Guarantees to trees
//!
//! A node sees only valid requests: the fid exists and is in the right
//! state, the open mode allows the operation, counts are clamped to iounit,
//! names are single path elements (never `.` or `..`), and directory reads
//! are paged by the session. Errors from a node become Rerror/Rlerror and
//! never end the connection.
//!
//! # Non-goals
//!
//! Authentication protocols (there is an [`Auth`] hook), transports other
//! than byte streams, and any knowledge of grids.

#![warn(missing_docs, unreachable_pub)]

mod conn;
mod convert;
pub mod error;
pub mod ids;
pub mod listen;
mod session;
pub mod synth;
pub mod trace;
pub mod tree;

use std::sync::Arc;

pub use error::{Error, Result};
pub use session::Auth;
pub use tree::*;

/// The default and largest msize: 1 MiB of payload plus the I/O header.
pub const DEFAULT_MAX_MSIZE: u32 = (1 << 20) + ninep::IOHDRSZ;

/// How a server behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// The largest msize offered in Rversion.
    pub max_msize: u32,
    /// Print each T and R message on stderr (chatty9p).
    pub trace: bool,
    /// Authentication; `None` answers Tauth with "authentication not required".
    pub auth: Option<Arc<dyn Auth>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_msize: DEFAULT_MAX_MSIZE,
            trace: false,
            auth: None,
        }
    }
}

/// A 9P server for one file server, ready to serve connections.
#[derive(Clone)]
pub struct Server {
    fs: Arc<dyn FileServer>,
    config: ServerConfig,
}

impl Server {
    /// A server for `fs`.
    pub fn new(fs: Arc<dyn FileServer>, config: ServerConfig) -> Self {
        Server { fs, config }
    }

    /// A server for a single tree, attachable at any path inside it.
    pub fn for_tree(root: Arc<dyn Node>, config: ServerConfig) -> Self {
        Server::new(Arc::new(SingleTree(root)), config)
    }

    /// Serves one connection until the peer hangs up or breaks the protocol.
    pub async fn serve_conn<S>(&self, stream: S, peer: PeerInfo) -> std::io::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        conn::serve(self, stream, peer).await
    }
}
