//! An immutable open-addressing map from `u64` keys, for per-packet lookups in the
//! snapshot (services by (VIP, port, protocol), local addresses, neighbors). Built off
//! the fast path; a lookup is one multiply and, usually, one cache line.
#![forbid(unsafe_code)]

#[derive(Debug, Clone)]
pub struct FastMap<V: Copy> {
    keys: Box<[u64]>,
    vals: Box<[Option<V>]>,
    shift: u32,
    len: usize,
}

impl<V: Copy> Default for FastMap<V> {
    fn default() -> Self {
        Self::from_iter(std::iter::empty())
    }
}

impl<V: Copy> FromIterator<(u64, V)> for FastMap<V> {
    /// Later duplicates replace earlier ones.
    fn from_iter<I: IntoIterator<Item = (u64, V)>>(items: I) -> Self {
        let items: Vec<(u64, V)> = items.into_iter().collect();
        let cap = (items.len() * 2).next_power_of_two().max(8);
        let mut m = FastMap {
            keys: vec![0; cap].into_boxed_slice(),
            vals: vec![None; cap].into_boxed_slice(),
            shift: 64 - cap.trailing_zeros(),
            len: 0,
        };
        for (k, v) in items {
            let mut i = m.slot(k);
            loop {
                if m.vals[i].is_none() {
                    m.keys[i] = k;
                    m.vals[i] = Some(v);
                    m.len += 1;
                    break;
                }
                if m.keys[i] == k {
                    m.vals[i] = Some(v);
                    break;
                }
                i = (i + 1) & (cap - 1);
            }
        }
        m
    }
}

impl<V: Copy> FastMap<V> {
    #[inline(always)]
    fn slot(&self, k: u64) -> usize {
        (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }
    #[inline]
    pub fn get(&self, k: u64) -> Option<V> {
        let mask = self.keys.len() - 1;
        let mut i = self.slot(k);
        loop {
            match self.vals[i] {
                None => return None,
                Some(v) if self.keys[i] == k => return Some(v),
                _ => i = (i + 1) & mask,
            }
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.keys
            .iter()
            .zip(self.vals.iter())
            .filter_map(|(&k, v)| v.map(|v| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::FastMap;
    #[test]
    fn get_and_replace() {
        let m: FastMap<u16> = (0..1000u64)
            .map(|k| (k * 7, k as u16))
            .chain([(0, 9)])
            .collect();
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(0), Some(9));
        for k in 1..1000u64 {
            assert_eq!(m.get(k * 7), Some(k as u16));
            assert_eq!(m.get(k * 7 + 1), None);
        }
        assert_eq!(FastMap::<u8>::default().get(3), None);
    }
}
