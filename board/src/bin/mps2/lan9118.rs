//! A driver for the SMSC (now Microchip) LAN9118 Ethernet controller as a `smoltcp::phy::Device`,
//! register by register from the datasheet (LAN9118 rev. 1.5, section 5 "Register Description";
//! the numbers in brackets below are its sections). No crate drives this chip for smoltcp.
//!
//! The LAN9118 is a MAC and PHY behind a 32-bit memory interface with FIFOs instead of DMA: a frame
//! is sent by writing two command words and its bytes to the TX data FIFO port, and received by
//! reading its status word from the RX status FIFO port, then its bytes from the RX data FIFO
//! port. The driver polls (no interrupt): the firmware looks at [`Lan9118::has_frame`] between
//! its sleeps. One frame buffer each way, 1.5 KiB each.
//!
//! What QEMU models of the chip (hw/net/lan9118.c) is what this driver uses: FIFOs, the MAC's
//! control and address registers, the PHY's status. QEMU sends a frame as soon as its last word
//! is written and never lets the TX FIFO fill; the driver still checks the free space first, as
//! the real chip needs.

use core::ptr::{read_volatile, write_volatile};

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};

/// The largest frame: 1500 bytes of MTU and a 14-byte header (the MAC adds the CRC).
pub const FRAME: usize = 1514;
/// Room for a received frame and its 4-byte CRC, in whole FIFO words.
const RX_WORDS: usize = (FRAME + 4).div_ceil(4);

/// System control and status registers: byte offsets from the chip's base address [5.3].
mod reg {
    /// RX data FIFO port (0x00-0x1c alias one port) [5.1].
    pub const RX_DATA_FIFO: usize = 0x00;
    /// TX data FIFO port (0x20-0x3c) [5.1].
    pub const TX_DATA_FIFO: usize = 0x20;
    /// RX status FIFO port: one status word per received frame [5.2].
    pub const RX_STATUS_FIFO: usize = 0x40;
    /// Chip ID (high half: 0x0118 for the LAN9118) and revision [5.3.1].
    pub const ID_REV: usize = 0x50;
    /// Interrupt enable: all off, the driver polls [5.3.5].
    pub const INT_EN: usize = 0x5c;
    /// Reads 0x8765_4321 once the chip's bus interface is up [5.3.6].
    pub const BYTE_TEST: usize = 0x64;
    /// Transmitter on, status FIFO overrun allowed [5.3.8].
    pub const TX_CFG: usize = 0x70;
    /// Soft reset [5.3.9].
    pub const HW_CFG: usize = 0x74;
    /// RX FIFO fill: bits 23:16 count the frames waiting [5.3.11].
    pub const RX_FIFO_INF: usize = 0x7c;
    /// TX FIFO room: bits 15:0 are the free bytes of the data FIFO [5.3.12].
    pub const TX_FIFO_INF: usize = 0x80;
    /// Power management: bit 0 (READY) says the chip is out of reset [5.3.13].
    pub const PMT_CTRL: usize = 0x84;
    /// A free-running 25 MHz counter [5.3.17].
    pub const FREE_RUN: usize = 0x9c;
    /// Indirect access to the MAC's registers: command [5.3.19] ...
    pub const MAC_CSR_CMD: usize = 0xa4;
    /// ... and data [5.3.20].
    pub const MAC_CSR_DATA: usize = 0xa8;
}

/// MAC control and status registers, reached through `MAC_CSR_CMD` [5.4].
mod mac {
    /// MAC control: transmit and receive enable, duplex, filtering [5.4.1].
    pub const CR: u32 = 1;
    /// The station address, bytes 4-5 [5.4.2] ...
    pub const ADDRH: u32 = 2;
    /// ... and bytes 0-3 [5.4.3].
    pub const ADDRL: u32 = 3;
    /// MII access: the PHY's registers [5.4.6] ...
    pub const MII_ACC: u32 = 6;
    /// ... and the data read or written [5.4.7].
    pub const MII_DATA: u32 = 7;
}

/// `HW_CFG.SRST`: soft reset, self-clearing.
const HW_CFG_SRST: u32 = 1 << 0;
/// `PMT_CTRL.READY`.
const PMT_READY: u32 = 1 << 0;
/// `TX_CFG.TX_ON` and `TX_CFG.TXSAO`: with overrun allowed, the driver never has to read the
/// TX status FIFO (it learns nothing from it that TCP does not).
const TX_CFG_ON: u32 = (1 << 1) | (1 << 2);
/// `MAC_CSR_CMD`: busy (set to start, cleared when done) and read-not-write.
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
/// `MAC_CR`: receive and transmit enable, full duplex. Promiscuous mode (on after reset) off, so
/// the MAC passes only frames for its own address and broadcasts.
const MAC_CR_RUN: u32 = (1 << 2) | (1 << 3) | (1 << 20);
/// `MII_ACC`: busy, and the internal PHY's address (1) in bits 15:11.
const MII_BUSY: u32 = 1 << 0;
const MII_PHY: u32 = 1 << 11;
/// PHY basic status register (IEEE 802.3 clause 22 register 1) and its link bit.
const PHY_BSR: u32 = 1;
const PHY_LINK: u32 = 1 << 2;
/// TX command A [5.1.1]: first and last segment (the whole frame is one buffer); buffer size in
/// bits 10:0.
const TX_CMD_A_WHOLE: u32 = (1 << 13) | (1 << 12);
/// RX status [5.2]: frame length (with CRC) in bits 29:16, error summary in bit 15.
const RX_STS_ERROR: u32 = 1 << 15;
/// How many times a busy bit is read before giving up (the real chip needs microseconds; QEMU
/// clears them at once).
const SPINS: u32 = 100_000;
/// The chip ID of the LAN9118 family member this driver was written for.
const ID_LAN9118: u32 = 0x0118;

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `BYTE_TEST` did not read back its pattern: no chip at that address.
    NoChip,
    /// The chip ID is not the LAN9118's.
    WrongChip(u32),
    /// A reset or an indirect register access did not finish.
    Timeout,
}

/// The chip's registers at its base address.
#[derive(Clone, Copy)]
struct Regs(usize);

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s caller vouched that a LAN9118 is mapped at the base address;
        // every offset used is one of its 32-bit registers.
        unsafe { read_volatile((self.0 + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile((self.0 + offset) as *mut u32, value) }
    }

    /// Waits until `bits` of register `offset` read as `want`.
    fn wait(self, offset: usize, bits: u32, want: u32) -> Result<(), Error> {
        (0..SPINS)
            .find(|_| self.read(offset) & bits == want)
            .map(|_| ())
            .ok_or(Error::Timeout)
    }

    fn mac_read(self, index: u32) -> Result<u32, Error> {
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY, 0)?;
        self.write(reg::MAC_CSR_CMD, CSR_BUSY | CSR_READ | index);
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY, 0)?;
        Ok(self.read(reg::MAC_CSR_DATA))
    }

    fn mac_write(self, index: u32, value: u32) -> Result<(), Error> {
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY, 0)?;
        self.write(reg::MAC_CSR_DATA, value);
        self.write(reg::MAC_CSR_CMD, CSR_BUSY | index);
        self.wait(reg::MAC_CSR_CMD, CSR_BUSY, 0)
    }

    /// Waits until the MII interface is free (`MII_ACC.MIIBZY` clear).
    fn mii_wait(self) -> Result<(), Error> {
        for _ in 0..SPINS {
            if self.mac_read(mac::MII_ACC)? & MII_BUSY == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn phy_read(self, index: u32) -> Result<u32, Error> {
        self.mii_wait()?;
        self.mac_write(mac::MII_ACC, MII_PHY | (index << 6) | MII_BUSY)?;
        self.mii_wait()?;
        Ok(self.mac_read(mac::MII_DATA)? & 0xffff)
    }
}

/// What [`Lan9118::new`] found.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// `ID_REV`: chip ID and revision.
    pub id_rev: u32,
    /// The PHY reports a link.
    pub link: bool,
}

/// The controller, with one receive and one transmit buffer.
pub struct Lan9118 {
    regs: Regs,
    rx: [u8; RX_WORDS * 4],
    tx: [u8; FRAME],
}

impl Lan9118 {
    /// Resets the chip at `base`, gives it the station address `mac` and starts its receiver and
    /// transmitter.
    ///
    /// # Safety
    /// A LAN9118 must be mapped at `base`, and nothing else may touch it while this driver lives.
    pub unsafe fn new(base: usize, mac: [u8; 6]) -> Result<(Self, Info), Error> {
        let regs = Regs(base);
        if regs.read(reg::BYTE_TEST) != 0x8765_4321 {
            return Err(Error::NoChip);
        }
        let id_rev = regs.read(reg::ID_REV);
        if id_rev >> 16 != ID_LAN9118 {
            return Err(Error::WrongChip(id_rev));
        }
        regs.write(reg::HW_CFG, HW_CFG_SRST);
        regs.wait(reg::HW_CFG, HW_CFG_SRST, 0)?;
        regs.wait(reg::PMT_CTRL, PMT_READY, PMT_READY)?;
        regs.write(reg::INT_EN, 0);
        let [m0, m1, m2, m3, m4, m5] = mac.map(u32::from);
        regs.mac_write(mac::ADDRL, m0 | m1 << 8 | m2 << 16 | m3 << 24)?;
        regs.mac_write(mac::ADDRH, m4 | m5 << 8)?;
        regs.mac_write(mac::CR, MAC_CR_RUN)?;
        regs.write(reg::TX_CFG, TX_CFG_ON);
        let link = regs.phy_read(PHY_BSR)? & PHY_LINK != 0;
        let eth = Self {
            regs,
            rx: [0; RX_WORDS * 4],
            tx: [0; FRAME],
        };
        Ok((eth, Info { id_rev, link }))
    }

    /// A frame is waiting in the RX FIFO.
    pub fn has_frame(&self) -> bool {
        (self.regs.read(reg::RX_FIFO_INF) >> 16) & 0xff != 0
    }

    /// The chip's free-running 25 MHz counter (the firmware's entropy source, see main.rs).
    pub fn free_run(&self) -> FreeRun {
        FreeRun(self.regs)
    }

    /// Reads the next frame out of the RX FIFO into the receive buffer and returns its length
    /// without the CRC, or `None` for a frame the MAC flagged bad or that does not fit (read out
    /// and dropped).
    fn pop_frame(&mut self) -> Option<usize> {
        let status = self.regs.read(reg::RX_STATUS_FIFO);
        let len = ((status >> 16) & 0x3fff) as usize;
        // The FIFO holds the frame and its CRC, padded to whole words: all must be read.
        for i in 0..len.div_ceil(4) {
            let word = self.regs.read(reg::RX_DATA_FIFO).to_le_bytes();
            if let Some(slot) = self.rx.get_mut(i * 4..i * 4 + 4) {
                slot.copy_from_slice(&word);
            }
        }
        let fits = (14 + 4..=self.rx.len()).contains(&len);
        (status & RX_STS_ERROR == 0 && fits).then_some(len - 4)
    }

    /// The TX data FIFO has room for a whole frame and its two command words.
    fn tx_room(&self) -> bool {
        (self.regs.read(reg::TX_FIFO_INF) & 0xffff) as usize >= FRAME + 8
    }
}

/// The chip's free-running counter: reading it has no side effects, so it may be read while
/// smoltcp holds the driver.
#[derive(Clone, Copy)]
pub struct FreeRun(Regs);

impl FreeRun {
    /// The count, in 25 MHz ticks since the chip's reset.
    pub fn read(self) -> u32 {
        self.0.read(reg::FREE_RUN)
    }
}

/// A received frame in the driver's buffer.
pub struct Rx<'a>(&'a [u8]);

/// The transmit buffer and the chip to push it to.
pub struct Tx<'a> {
    regs: Regs,
    buffer: &'a mut [u8; FRAME],
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(FRAME);
        let frame = &mut self.buffer[..len];
        let result = f(frame);
        // Command A: one buffer that is the whole frame; command B: a tag (the length, unused)
        // and the frame length. Then the bytes, little-endian in 32-bit words, the last padded.
        self.regs
            .write(reg::TX_DATA_FIFO, TX_CMD_A_WHOLE | len as u32);
        self.regs
            .write(reg::TX_DATA_FIFO, (len as u32) << 16 | len as u32);
        for chunk in frame.chunks(4) {
            let mut word = [0; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            self.regs.write(reg::TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // A bad frame is dropped here and the next looked at: smoltcp stops asking at `None`.
        let len = loop {
            if !self.has_frame() || !self.tx_room() {
                return None;
            }
            if let Some(len) = self.pop_frame() {
                break len;
            }
        };
        let tx = Tx {
            regs: self.regs,
            buffer: &mut self.tx,
        };
        Some((Rx(&self.rx[..len]), tx))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        self.tx_room().then_some(Tx {
            regs: self.regs,
            buffer: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        caps
    }
}
