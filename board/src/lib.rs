//! zerocast on a board: the core's [`board`](zerocast_core::board) driver over smoltcp.
//!
//! This is the template a port starts from (docs/porting.md): everything but the network
//! device is here and is `#![no_std]` without `alloc`. A board supplies
//! - a `smoltcp::phy::Device` for its Ethernet MAC or Wi-Fi chip (the one trait to implement),
//! - a millisecond clock (`now` of [`Board::poll`]),
//! - entropy: a seed for smoltcp and 32 bytes per connection for the RTMP handshake,
//! - the memory: one [`Buffers`] and one socket table, in `static`s or `main`'s frame.
//!
//! ```text
//!  Tone ──> Stream::pace ──> Ring ─┬─> Player 0 ──> SocketIo(tcp socket 0) ─┐
//!                                  ├─> Player 1 ──> SocketIo(tcp socket 1) ─┼─> Interface ──> Device
//!                                  └─> ...                                  ┘
//! ```
//!
//! The stream is a 440 Hz tone in SWF ADPCM, 22.05 kHz mono (11 kB/s): swap [`Tone::fill`] for
//! a capture buffer to serve real audio.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod socket;
mod tone;

pub use socket::{SocketError, SocketIo};
pub use tone::Tone;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};
use zerocast_core::board::{Player, PlayerError, Stream, StreamConfig, StreamError};
use zerocast_core::codec::AdpcmSwf;
use zerocast_core::ring::Ring;
use zerocast_core::session::ServerConfig;
use zerocast_core::time::Instant;

/// Players served at once.
pub const PLAYERS: usize = 4;
/// Sample rate of the stream.
pub const RATE: u32 = 22_050;
/// Frames per message: ~46 ms; an odd count, so 4-bit mono SWF ADPCM has no padding sample.
pub const FRAMES: usize = 1023;
/// One encoded message: the tag header byte and the ADPCM packet (2 bits of code size, a 22-bit
/// block header, 4 bits for each further frame: 514 bytes).
pub const BODY: usize = 1 + 514;
/// Ring arena: 16 KiB hold ~1.4 s of this stream (a message is ~530 bytes chunk-encoded).
pub const RING_BYTES: usize = 16 * 1024;
/// Ring index: more slots than messages fit, so the arena is the limit.
pub const RING_SLOTS: usize = 40;
/// TCP receive buffer per player: players send commands and acknowledgements only.
pub const SOCKET_RX: usize = 2048;
/// TCP send buffer per player: the join buffer (500 ms, ~6 KiB) goes out in two windows.
pub const SOCKET_TX: usize = 4096;

/// One player: 2 KiB reassembly arena (commands are < 1 KiB), 1 KiB for the session's replies,
/// 256 bytes of receive buffer.
pub type BoardPlayer = Player<2048, 1024, 256>;
/// The ring of this example.
pub type BoardRing = Ring<RING_BYTES, RING_SLOTS>;

/// Every buffer of the example but the socket table (which borrows from it). `const` to build,
/// so it can be a `static` and show up in `.bss`.
pub struct Buffers {
    ring: BoardRing,
    pcm: [i16; FRAMES],
    body: [u8; BODY],
    players: [BoardPlayer; PLAYERS],
    socket_rx: [[u8; SOCKET_RX]; PLAYERS],
    socket_tx: [[u8; SOCKET_TX]; PLAYERS],
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

impl Buffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            ring: BoardRing::new(),
            pcm: [0; FRAMES],
            body: [0; BODY],
            players: [const { BoardPlayer::new() }; PLAYERS],
            socket_rx: [[0; SOCKET_RX]; PLAYERS],
            socket_tx: [[0; SOCKET_TX]; PLAYERS],
        }
    }
}

/// The socket table for [`Board::new`].
pub type Sockets<'a> = [SocketStorage<'a>; PLAYERS];

/// Where the board is on the network.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// The interface's MAC address.
    pub mac: [u8; 6],
    /// Its IPv4 address and prefix.
    pub address: IpCidr,
    /// The RTMP port (1935).
    pub port: u16,
    /// smoltcp's random seed (TCP sequence numbers, ports): different on every boot.
    pub seed: u64,
}

/// What a player slot's socket is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Listening for a connection.
    Listening,
    /// Connected, its player open.
    Serving,
    /// Closed by us: waiting for the socket to be free to listen again.
    Closing,
}

/// The example: a smoltcp interface, one listening TCP socket per player slot, the stream and
/// the players. Call [`Board::poll`] in a loop.
pub struct Board<'a> {
    iface: Interface,
    sockets: SocketSet<'a>,
    /// One socket per player slot (all `Some` once `new` returned).
    handles: [Option<SocketHandle>; PLAYERS],
    slots: [Slot; PLAYERS],
    players: &'a mut [BoardPlayer; PLAYERS],
    stream: Stream<'a, AdpcmSwf, RING_BYTES, RING_SLOTS>,
    tone: Tone,
    session: ServerConfig,
    port: u16,
    closed: u32,
}

/// Why the example cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardError {
    /// The stream's settings were refused.
    Stream(StreamError),
    /// A socket could not listen on the port (port 0).
    Listen,
}

impl<'a> Board<'a> {
    /// Sets up the interface on `device` at `now`, the stream and the listening sockets.
    pub fn new<D: Device + ?Sized>(
        buffers: &'a mut Buffers,
        sockets: &'a mut Sockets<'a>,
        device: &mut D,
        net: &NetConfig,
        now: Instant,
    ) -> Result<Self, BoardError> {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(net.mac)));
        config.random_seed = net.seed;
        let mut iface = Interface::new(config, device, smol(now));
        iface.update_ip_addrs(|addrs| {
            // An empty list has room for one address.
            let _ = addrs.push(net.address);
        });
        let Buffers {
            ring,
            pcm,
            body,
            players,
            socket_rx,
            socket_tx,
        } = buffers;
        let mut set = SocketSet::new(&mut sockets[..]);
        let mut handles = [None; PLAYERS];
        for ((handle, rx), tx) in handles.iter_mut().zip(socket_rx).zip(socket_tx) {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            );
            // 20 ms of audio must not wait for the previous segment's ACK.
            socket.set_nagle_enabled(false);
            socket.listen(net.port).map_err(|_| BoardError::Listen)?;
            *handle = Some(set.add(socket));
        }
        let session = ServerConfig::default();
        let config = StreamConfig {
            app: "live",
            name: "audio",
            rate: RATE,
            channels: 1,
            join_ms: 500,
            session,
        };
        let encoder =
            AdpcmSwf::new(RATE, 1, 4).map_err(|e| BoardError::Stream(StreamError::Codec(e)))?;
        let stream = Stream::new(config, encoder, ring, pcm, body).map_err(BoardError::Stream)?;
        Ok(Self {
            iface,
            sockets: set,
            handles,
            slots: [Slot::Listening; PLAYERS],
            players,
            stream,
            tone: Tone::new(440, RATE, 1),
            session,
            port: net.port,
            closed: 0,
        })
    }

    /// One turn: packets in, audio that is due, every player, packets out. `entropy` is asked for
    /// 32 bytes per new connection. Returns when to call again at the latest (sooner when the
    /// device has a packet).
    pub fn poll<D: Device + ?Sized>(
        &mut self,
        device: &mut D,
        now: Instant,
        mut entropy: impl FnMut() -> [u8; 32],
    ) -> Result<Instant, StreamError> {
        self.iface.poll(smol(now), device, &mut self.sockets);
        let tone = &mut self.tone;
        let mut wake = self.stream.pace(now, |pcm| tone.fill(pcm))?;
        for ((handle, slot), player) in self
            .handles
            .iter()
            .zip(self.slots.iter_mut())
            .zip(self.players.iter_mut())
        {
            let Some(handle) = *handle else { continue };
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            match *slot {
                Slot::Listening if socket.may_recv() => {
                    player.open(now, entropy(), &self.session);
                    *slot = Slot::Serving;
                }
                Slot::Closing
                    if socket.state() == tcp::State::Closed && socket.listen(self.port).is_ok() =>
                {
                    *slot = Slot::Listening;
                }
                _ => {}
            }
            if *slot != Slot::Serving {
                continue;
            }
            if !socket.is_active() {
                // Reset by the peer.
                player.close();
                self.closed += 1;
                *slot = Slot::Closing;
                continue;
            }
            if let Err(e) = player.poll(&mut SocketIo(socket), &self.stream, now) {
                match e {
                    // Let the last bytes (a refusal) go out, then FIN.
                    PlayerError::PeerClosed | PlayerError::Refused => socket.close(),
                    _ => socket.abort(),
                }
                self.closed += 1;
                *slot = Slot::Closing;
                continue;
            }
            if let Some(at) = player.poll_timeout() {
                wake = wake.min(at);
            }
        }
        self.iface.poll(smol(now), device, &mut self.sockets);
        if let Some(delay) = self.iface.poll_delay(smol(now), &self.sockets) {
            wake = wake.min(now.saturating_add_millis(delay.total_millis()));
        }
        Ok(wake)
    }

    /// Players currently sent audio.
    pub fn playing(&self) -> usize {
        self.players.iter().filter(|p| p.is_playing()).count()
    }

    /// Connections closed so far (by either side).
    pub fn closed(&self) -> u32 {
        self.closed
    }
}

/// The core's clock as smoltcp's.
fn smol(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(now.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn the_buffers_fit_the_encoder_exactly() {
        use zerocast_core::codec::BlockEncoder;
        let adpcm = AdpcmSwf::new(RATE, 1, 4).unwrap();
        assert_eq!(adpcm.fit_frames(FRAMES), FRAMES);
        assert_eq!(1 + adpcm.max_encoded_len(FRAMES), BODY);
    }

    #[test]
    fn memory_of_the_example_is_printed() {
        // On this (64-bit) host; docs/porting.md has the 32-bit numbers from the thumbv6m build.
        std::println!(
            "Buffers: {} bytes; BoardPlayer: {}; tcp::Socket: {}; Board (on the stack): {}",
            size_of::<Buffers>(),
            size_of::<BoardPlayer>(),
            size_of::<tcp::Socket>(),
            size_of::<Board>()
        );
        // The budget docs/porting.md gives for the example: 80 KiB of buffers, 2 KiB of stack.
        assert!(size_of::<Buffers>() < 80 * 1024);
        assert!(size_of::<Board>() < 2 * 1024);
    }
}
