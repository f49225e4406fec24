//! `embedded-io` for a smoltcp TCP socket: the transport `zerocast_core::board::Player` polls.
//!
//! smoltcp sockets never block: they hold what the interface received and queue what it will
//! send. `ReadReady` / `WriteReady` say whether a `read` / `write` finds something to do; the
//! driver calls `read` and `write` only then, so they never have to wait (they answer
//! [`SocketError::WouldBlock`] if called anyway, instead of blocking as the traits' contract
//! would want, which only a stack with its own task could do).

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp::{self, RecvError};

/// A TCP socket borrowed for one [`Player::poll`](zerocast_core::board::Player::poll).
pub struct SocketIo<'s, 'a>(pub &'s mut tcp::Socket<'a>);

/// What a socket operation could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The connection is gone (reset, or not established).
    NotConnected,
    /// Nothing to read, or no room to write: `*_ready` said so first.
    WouldBlock,
}

impl embedded_io::Error for SocketError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotConnected => ErrorKind::NotConnected,
            Self::WouldBlock => ErrorKind::Other,
        }
    }
}

impl ErrorType for SocketIo<'_, '_> {
    type Error = SocketError;
}

impl Read for SocketIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        match self.0.recv_slice(buf) {
            Ok(0) if !buf.is_empty() => Err(SocketError::WouldBlock),
            Ok(n) => Ok(n),
            // The peer sent FIN and everything before it was read: end of stream.
            Err(RecvError::Finished) => Ok(0),
            Err(RecvError::InvalidState) => Err(SocketError::NotConnected),
        }
    }
}

impl ReadReady for SocketIo<'_, '_> {
    fn read_ready(&mut self) -> Result<bool, SocketError> {
        // Data waiting, or the receive half is over (then `read` reports the end or the error).
        Ok(self.0.can_recv() || !self.0.may_recv())
    }
}

impl Write for SocketIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        match self.0.send_slice(buf) {
            Ok(0) if !buf.is_empty() => Err(SocketError::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(SocketError::NotConnected),
        }
    }

    fn flush(&mut self) -> Result<(), SocketError> {
        // The interface sends the queue at its next poll; there is nothing to wait for here.
        Ok(())
    }
}

impl WriteReady for SocketIo<'_, '_> {
    fn write_ready(&mut self) -> Result<bool, SocketError> {
        // Room in the queue, or the send half is over (then `write` reports it).
        Ok(self.0.can_send() || !self.0.may_send())
    }
}
