//! The rendezvous and the CPU collectives: a star of TCP connections
//! around rank 0.
//!
//! Every other rank connects to rank 0 and introduces itself (a magic
//! string, its rank, the world size and a fingerprint of the run's token);
//! rank 0 accepts exactly one connection per rank and answers each. A sum
//! gathers every rank's buffer at rank 0, adds them in rank order (so the
//! result does not depend on which arrived first) and sends the result
//! back; a broadcast sends rank 0's buffer to all. Messages are a `u64`
//! little-endian byte count and the values in little-endian order.

use super::{Rendezvous, World};
use crate::{Error, Result};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"LVSGDP1\0";

fn err(what: impl std::fmt::Display) -> Error {
    Error::Distributed(what.to_string())
}

/// The token's FNV-1a hash, the same on every build.
fn fingerprint(token: &str) -> u64 {
    let mut h = crate::data::Fnv::new();
    h.write(token.as_bytes());
    h.finish()
}

/// One connection, buffered both ways.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Peer {
    fn new(stream: TcpStream) -> Result<Peer> {
        stream.set_nodelay(true).map_err(err)?;
        let reader = BufReader::with_capacity(1 << 20, stream.try_clone().map_err(err)?);
        Ok(Peer {
            reader,
            writer: BufWriter::with_capacity(1 << 20, stream),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(&(bytes.len() as u64).to_le_bytes())?;
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    fn receive_into(&mut self, out: &mut Vec<u8>, expect: usize) -> std::io::Result<()> {
        let mut len = [0u8; 8];
        self.reader.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len) as usize;
        if len != expect {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a message of {len} bytes where {expect} were expected (ranks out of step)"
                ),
            ));
        }
        out.resize(len, 0);
        self.reader.read_exact(out)
    }
}

/// Values the collectives carry.
pub(super) trait Elem: Copy + std::ops::AddAssign {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

impl Elem for f32 {
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Elem for f64 {
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        f64::from_le_bytes(a)
    }
}

fn encode<T: Elem>(data: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * T::SIZE);
    data.iter().for_each(|v| v.put(&mut out));
    out
}

fn decode_into<T: Elem>(bytes: &[u8], data: &mut [T]) {
    for (v, b) in data.iter_mut().zip(bytes.chunks_exact(T::SIZE)) {
        *v = T::get(b);
    }
}

/// The star around rank 0: rank 0 holds a connection to every other rank
/// (index `r - 1`), the others one to rank 0.
pub(super) struct Star {
    world: World,
    peers: Vec<Peer>,
    scratch: Vec<u8>,
}

impl Star {
    /// Meets the other ranks (see the module header).
    pub(super) fn connect(
        world: World,
        rendezvous: &Rendezvous,
        token: &str,
        timeout: Duration,
    ) -> Result<Star> {
        let print = fingerprint(token);
        let peers = if world.size <= 1 {
            Vec::new()
        } else if world.rank == 0 {
            accept_all(world, rendezvous, print, timeout)?
        } else {
            vec![join(world, rendezvous, print, timeout)?]
        };
        Ok(Star {
            world,
            peers,
            scratch: Vec::new(),
        })
    }

    /// Replaces `data` with its element-wise sum over the ranks, added in
    /// rank order.
    pub(super) fn all_reduce_sum<T: Elem>(&mut self, data: &mut [T]) -> Result<()> {
        if self.world.size <= 1 {
            return Ok(());
        }
        let bytes = data.len() * T::SIZE;
        if self.world.rank == 0 {
            let mut sum = data.to_vec();
            let mut theirs = data.to_vec();
            for (i, p) in self.peers.iter_mut().enumerate() {
                p.receive_into(&mut self.scratch, bytes)
                    .map_err(|e| err(format!("rank {}: {e}", i + 1)))?;
                decode_into(&self.scratch, &mut theirs);
                sum.iter_mut().zip(&theirs).for_each(|(s, &t)| *s += t);
            }
            let out = encode(&sum);
            for (i, p) in self.peers.iter_mut().enumerate() {
                p.send(&out)
                    .map_err(|e| err(format!("rank {}: {e}", i + 1)))?;
            }
            data.copy_from_slice(&sum);
        } else {
            let p = &mut self.peers[0];
            p.send(&encode(data))
                .map_err(|e| err(format!("rank 0: {e}")))?;
            p.receive_into(&mut self.scratch, bytes)
                .map_err(|e| err(format!("rank 0: {e}")))?;
            decode_into(&self.scratch, data);
        }
        Ok(())
    }

    /// Replaces `data` with rank 0's.
    pub(super) fn broadcast_from_root<T: Elem>(&mut self, data: &mut [T]) -> Result<()> {
        if self.world.size <= 1 {
            return Ok(());
        }
        if self.world.rank == 0 {
            let out = encode(data);
            for (i, p) in self.peers.iter_mut().enumerate() {
                p.send(&out)
                    .map_err(|e| err(format!("rank {}: {e}", i + 1)))?;
            }
        } else {
            let bytes = data.len() * T::SIZE;
            self.peers[0]
                .receive_into(&mut self.scratch, bytes)
                .map_err(|e| err(format!("rank 0: {e}")))?;
            decode_into(&self.scratch, data);
        }
        Ok(())
    }

    /// Sends raw bytes from rank 0 to every rank (the NCCL id).
    #[cfg(feature = "nccl")]
    pub(super) fn broadcast_bytes(&mut self, bytes: &mut [u8]) -> Result<()> {
        self.broadcast_from_root(bytes)
    }
}

#[cfg(feature = "nccl")]
impl Elem for u8 {
    const SIZE: usize = 1;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
    fn get(b: &[u8]) -> Self {
        b[0]
    }
}

fn hello(world: World, print: u64) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&(world.rank as u64).to_le_bytes());
    h.extend_from_slice(&(world.size as u64).to_le_bytes());
    h.extend_from_slice(&print.to_le_bytes());
    h
}

/// Rank 0: listens, accepts one connection per other rank, answers each.
fn accept_all(
    world: World,
    rendezvous: &Rendezvous,
    print: u64,
    timeout: Duration,
) -> Result<Vec<Peer>> {
    let listener = match rendezvous {
        Rendezvous::Tcp(addr, port) => TcpListener::bind((addr.as_str(), *port))
            .map_err(|e| err(format!("cannot listen on {addr}:{port}: {e}")))?,
        Rendezvous::File(path, addr) => {
            let l = TcpListener::bind((addr.as_str(), 0))
                .map_err(|e| err(format!("cannot listen on {addr}: {e}")))?;
            let port = l.local_addr().map_err(err)?.port();
            let text = format!("{addr}:{port}\n");
            liverseg_io::write_file_atomic(path, liverseg_io::Overwrite::Allow, |w| {
                w.write_all(text.as_bytes())
            })?;
            l
        }
    };
    listener.set_nonblocking(true).map_err(err)?;
    let deadline = Instant::now() + timeout;
    let mut slots: Vec<Option<Peer>> = (1..world.size).map(|_| None).collect();
    while slots.iter().any(Option::is_none) {
        match listener.accept() {
            Ok((stream, from)) => {
                stream.set_nonblocking(false).map_err(err)?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .map_err(err)?;
                let mut peer = Peer::new(stream)?;
                let mut h = [0u8; 32];
                if peer.reader.read_exact(&mut h).is_err() || &h[..8] != MAGIC {
                    tracing::warn!(%from, "not a liverseg rank; connection dropped");
                    continue;
                }
                let field =
                    |i: usize| u64::from_le_bytes(h[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
                let (rank, size, theirs) = (field(1) as usize, field(2) as usize, field(3));
                let refuse = if size != world.size {
                    Some(format!("world size {size}, rank 0 has {}", world.size))
                } else if theirs != print {
                    Some("a different run (its configuration differs)".to_string())
                } else if rank == 0 || rank >= world.size || slots[rank - 1].is_some() {
                    Some(format!("rank {rank} is taken or out of range"))
                } else {
                    None
                };
                let answer: &[u8] = if refuse.is_some() { b"N" } else { b"Y" };
                let _ = peer
                    .writer
                    .write_all(answer)
                    .and_then(|()| peer.writer.flush());
                match refuse {
                    Some(why) => tracing::warn!(%from, why, "rank refused"),
                    None => {
                        peer.reader.get_ref().set_read_timeout(None).map_err(err)?;
                        slots[rank - 1] = Some(peer);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<usize> = slots
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.is_none())
                        .map(|(i, _)| i + 1)
                        .collect();
                    return Err(err(format!(
                        "ranks {missing:?} did not join within {} s",
                        timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(err(format!("accept: {e}"))),
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// The address rank 0 listens on, as far as it is known yet.
fn address(rendezvous: &Rendezvous) -> Option<String> {
    match rendezvous {
        Rendezvous::Tcp(addr, port) => Some(format!("{addr}:{port}")),
        Rendezvous::File(path, _) => std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    }
}

/// Another rank: connects to rank 0 (retrying until the deadline) and
/// introduces itself.
fn join(world: World, rendezvous: &Rendezvous, print: u64, timeout: Duration) -> Result<Peer> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no address yet");
    loop {
        if let Some(addr) = address(rendezvous) {
            match try_join(&addr, world, print) {
                Ok(Some(peer)) => return Ok(peer),
                Ok(None) => {
                    return Err(err(format!(
                        "rank 0 at {addr} refused rank {} (see its log)",
                        world.rank
                    )));
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        if Instant::now() > deadline {
            return Err(err(format!(
                "rank {} could not reach rank 0 within {} s ({last})",
                world.rank,
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn try_join(addr: &str, world: World, print: u64) -> std::io::Result<Option<Peer>> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut peer = Peer::new(stream).map_err(std::io::Error::other)?;
    peer.writer.write_all(&hello(world, print))?;
    peer.writer.flush()?;
    let mut answer = [0u8; 1];
    peer.reader.read_exact(&mut answer)?;
    peer.reader.get_ref().set_read_timeout(None)?;
    Ok((answer[0] == b'Y').then_some(peer))
}
