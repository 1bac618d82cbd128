//! Classic pcap files (microsecond, Ethernet link type): enough to write the input of a
//! `net_pcap` port and to read what it wrote. Used by tests and tools, not the fast path.
#![forbid(unsafe_code)]
use std::io::{self, Read, Write};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;

/// Writes Ethernet frames as a pcap file.
pub fn write<W: Write>(mut w: W, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&MAGIC_US.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    w.write_all(&h)?;
    for (i, f) in frames.iter().enumerate() {
        let mut r = Vec::with_capacity(16);
        r.extend_from_slice(&(i as u32 / 1_000_000).to_le_bytes());
        r.extend_from_slice(&(i as u32 % 1_000_000).to_le_bytes());
        r.extend_from_slice(&(f.len() as u32).to_le_bytes());
        r.extend_from_slice(&(f.len() as u32).to_le_bytes());
        w.write_all(&r)?;
        w.write_all(f)?;
    }
    w.flush()
}

/// Reads every frame of a pcap file (either byte order, µs or ns timestamps).
pub fn read<R: Read>(mut r: R) -> io::Result<Vec<Vec<u8>>> {
    let mut all = Vec::new();
    r.read_to_end(&mut all)?;
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    if all.len() < 24 {
        return Err(bad("pcap: shorter than its global header"));
    }
    let magic = u32::from_le_bytes(all[0..4].try_into().unwrap());
    let le = match magic {
        MAGIC_US | MAGIC_NS => true,
        m if m.swap_bytes() == MAGIC_US || m.swap_bytes() == MAGIC_NS => false,
        _ => return Err(bad("pcap: bad magic")),
    };
    let u32_at = |b: &[u8], at: usize| {
        let a: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= all.len() {
        let caplen = u32_at(&all, at + 8) as usize;
        at += 16;
        if at + caplen > all.len() {
            return Err(bad("pcap: truncated record"));
        }
        out.push(all[at..at + caplen].to_vec());
        at += caplen;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip() {
        let frames = vec![vec![1u8, 2, 3], vec![], vec![9u8; 1500]];
        let mut b = Vec::new();
        super::write(&mut b, &frames).unwrap();
        assert_eq!(b.len(), 24 + 3 * 16 + 3 + 1500);
        assert_eq!(super::read(&b[..]).unwrap(), frames);
        // A trailing partial record header is ignored; a partial record body is an error.
        assert_eq!(super::read(&b[..30]).unwrap(), Vec::<Vec<u8>>::new());
        assert!(super::read(&b[..23]).is_err());
        assert!(super::read(&b[..b.len() - 1]).is_err());
    }
}
