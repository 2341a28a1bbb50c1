//! An async, pipelined 9P client for 9P2000, 9P2000.u and 9P2000.L.
//!
//! A [`Client`] speaks 9P over any byte stream (`AsyncRead + AsyncWrite`):
//! TCP, a Unix socket, an in-memory duplex, later a QUIC stream. It owns the
//! session: Tversion, tags, flush, fid numbers and the reader and writer
//! tasks. Files are reached through [`Fid`]s, which clunk themselves when
//! dropped. The codec is [`ninep`]'s; this crate adds only I/O and session
//! state.
//!
//! ```no_run
//! # async fn demo() -> ninep_client::Result<()> {
//! use ninep_client::{Client, OpenFlags};
//!
//! let client = Client::dial("tcp!localhost!564").await?;
//! let root = client.attach("glenda", "/srv/export").await?;
//! let mut f = root.walk(&["lib", "motd"]).await?;
//! f.open(OpenFlags::READ).await?;
//! let text = f.read_all().await?;
//! # Ok(()) }
//! ```
//!
//! # Concurrency
//!
//! Every method takes `&self` except those that change what a fid is
//! (`open`, `lcreate`, ...), so many tasks can share one `Client` and one
//! `Fid`, and their requests are in flight together on one connection.
//! [`Fid::read_all`] and [`Fid::write_all`] keep several iounit-sized chunks
//! in flight themselves.
//!
//! # Cancellation
//!
//! Dropping a request's future (a `select!` or `timeout` that gives up)
//! sends Tflush for it, as flush(5) describes; its tag is not reused until
//! the server answers the flush. If the request completed anyway and made a
//! fid, that fid is clunked.
//!
//! # A hostile server
//!
//! A frame larger than msize is refused from its size field, before it is
//! buffered. A reply for a tag not in flight, a reply of the wrong type or
//! an undecodable frame closes the connection, and every request in flight
//! fails with [`Error::Protocol`]; nothing waits forever on a server that
//! lies.
//!
//! # Layout
//!
//! - [`Client`], [`ClientConfig`] (here): connect, dial, attach, raw `rpc`.
//! - `conn`: session state: the tag table, flush on cancel, fid numbers.
//! - `io`: Tversion and the reader and writer tasks that move frames.
//! - [`fid`]: [`Fid`] and the dialect-neutral types its methods use
//!   ([`OpenFlags`], [`Metadata`], [`DirEntry`], [`SetAttr`]).
//! - `dial`: Plan 9 dial strings (`tcp!host!port`, `unix!/path`).
//! - [`error`]: [`Error`] and its mapping to `std::io::Error`.
//!
//! # Non-goals
//!
//! Authentication (Tauth) beyond what [`Client::rpc`] can carry, caching,
//! and any knowledge of what the files mean.

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conn;
mod dial;
pub mod error;
pub mod fid;
mod io;
mod types;

use std::sync::Arc;

use ninep::{Dialect, Fcall, IOHDRSZ, NONUNAME};
use tokio::io::{AsyncRead, AsyncWrite};

use conn::{Effect, Shared};
pub use error::{Error, Result};
pub use fid::{DirEntry, Fid, FileKind, Metadata, OpenFlags, SetAttr, SetTime};

/// The msize asked for by default: 512 KiB of payload plus the I/O header.
pub const DEFAULT_MSIZE: u32 = (512 << 10) + IOHDRSZ;

/// The 9P port (9pfs), used when a dial string names none.
pub use ninep::addr::DEFAULT_PORT;

/// What [`Client::connect`] asks for in Tversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// The largest message we accept; the server may lower it.
    pub msize: u32,
    /// The dialect we ask for; the server may answer with an older one.
    pub dialect: Dialect,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            msize: DEFAULT_MSIZE,
            dialect: Dialect::L,
        }
    }
}

/// A 9P session over one connection. Cheap to clone; the connection closes
/// when the last clone and the last [`Fid`] are dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
        self.shared.hang_up();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dialect", &self.dialect())
            .field("msize", &self.msize())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a session on `stream`: sends Tversion and adopts the msize
    /// and dialect the server answers with.
    ///
    /// A server may answer with a lesser dialect (`9P2000` when `.L` was
    /// asked for), and the client then speaks that; an answer of `unknown`
    /// or a newer dialect than asked is an error. Must be called within a
    /// tokio runtime, which runs the connection's reader and writer tasks.
    pub async fn connect<S>(stream: S, config: ClientConfig) -> Result<Client>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mut stream = Box::pin(stream);
        let version = io::version(&mut stream, config.msize, config.dialect).await?;
        let (shared, reader) = io::spawn(stream, version);
        Ok(Client {
            inner: Arc::new(Inner { shared, reader }),
        })
    }

    /// Connects to a Plan 9 dial string with the default [`ClientConfig`]:
    /// `tcp!host!port`, `tcp!host` (port 564), `unix!/path`, or plain
    /// `host:port` and `/path`.
    pub async fn dial(addr: &str) -> Result<Client> {
        Client::dial_with(addr, ClientConfig::default()).await
    }

    /// [`Client::dial`] with a chosen config.
    pub async fn dial_with(addr: &str, config: ClientConfig) -> Result<Client> {
        match dial::parse(addr)? {
            dial::Addr::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                // Small requests are pipelined; do not hold them back.
                s.set_nodelay(true)?;
                Client::connect(s, config).await
            }
            #[cfg(unix)]
            dial::Addr::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path).await?;
                Client::connect(s, config).await
            }
        }
    }

    /// The dialect in force.
    pub fn dialect(&self) -> Dialect {
        self.inner.shared.dialect
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.inner.shared.msize
    }

    /// Whether the connection has closed (the server hung up or broke the
    /// protocol); every request now fails.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Attaches to the tree `aname` as `uname`, without authentication.
    pub async fn attach(&self, uname: &str, aname: &str) -> Result<Fid> {
        self.attach_as(uname, NONUNAME, aname).await
    }

    /// [`Client::attach`] with a numeric user id (`n_uname`, sent in
    /// 9P2000.u and .L; ignored in 9P2000).
    pub async fn attach_as(&self, uname: &str, n_uname: u32, aname: &str) -> Result<Fid> {
        let shared = &self.inner.shared;
        let newfid = shared.reserve_fid()?;
        let body = ninep::Tattach {
            fid: newfid.get(),
            afid: ninep::NOFID,
            uname: uname.into(),
            aname: aname.into(),
            n_uname,
        };
        let reply = shared
            .start(body.into(), Effect::Creates(newfid, 0), true)
            .await?
            .await?;
        match (reply.body, reply.fid) {
            (Fcall::Rattach(r), Some(num)) => Ok(Fid::new(self.clone(), num, r.qid)),
            (body, _) => Err(unexpected(&body, "Tattach")),
        }
    }

    /// Sends any request that does not make or end a fid (Tstatfs, Tlock,
    /// Txattrcreate, Treadlink, Tsymlink, Tlink, ...) and returns its reply;
    /// Rerror and Rlerror become [`Error::Remote`]. Use [`Fid::number`] for
    /// fid fields.
    ///
    /// Requests that make or end fids (Tversion, Tauth, Tattach, Twalk,
    /// Txattrwalk, Tclunk, Tremove, Tflush) are refused, because the client
    /// must track those: use the [`Fid`] methods.
    pub async fn rpc(&self, body: impl Into<Fcall>) -> Result<Fcall> {
        let body = body.into();
        if matches!(
            body,
            Fcall::Tversion(_)
                | Fcall::Tauth(_)
                | Fcall::Tattach(_)
                | Fcall::Twalk(_)
                | Fcall::Txattrwalk(_)
                | Fcall::Tclunk(_)
                | Fcall::Tremove(_)
                | Fcall::Tflush(_)
        ) || !body.is_request()
        {
            return Err(Error::Invalid(format!(
                "{} cannot be sent with rpc",
                body.name()
            )));
        }
        Ok(self.call(body).await?.body)
    }

    /// One flushable request that does nothing to fids.
    async fn call(&self, body: Fcall) -> Result<conn::Reply> {
        self.inner
            .shared
            .start(body, Effect::None, true)
            .await?
            .await
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

/// The error for a reply that passed the type check but has an unexpected
/// shape (a fid-making reply without its fid).
fn unexpected(body: &Fcall, request: &str) -> Error {
    Error::Protocol(format!("{} in reply to {request}", body.name()))
}
