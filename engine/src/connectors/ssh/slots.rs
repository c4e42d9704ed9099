//! Which host of the pool takes the next instance: each host takes up to its number of slots
//! at once, and an instance is booked on a host before it starts there, so two starts never
//! take the same last slot. Bookings are made again from the handles after a server restart.

use std::collections::HashSet;

#[derive(Debug)]
pub struct Slots {
    capacity: Vec<usize>,
    /// Per host, the instances booked there (by their directory on the host: unique).
    booked: Vec<HashSet<String>>,
}

impl Slots {
    pub fn new(capacity: Vec<usize>) -> Self {
        let booked = capacity.iter().map(|_| HashSet::new()).collect();
        Self { capacity, booked }
    }

    /// Books `key` on the least-loaded host with a free slot (the first of equals); `None` when
    /// every host is full.
    pub fn book(&mut self, key: &str) -> Option<usize> {
        let host = (0..self.capacity.len()).filter(|&h| self.booked[h].len() < self.capacity[h]).min_by_key(|&h| self.booked[h].len())?;
        self.booked[host].insert(key.to_string());
        Some(host)
    }

    /// Books `key` on `host` whatever its load (re-attaching after a restart: it is there).
    pub fn rebook(&mut self, host: usize, key: &str) {
        if let Some(b) = self.booked.get_mut(host) {
            b.insert(key.to_string());
        }
    }

    pub fn release(&mut self, host: usize, key: &str) {
        if let Some(b) = self.booked.get_mut(host) {
            b.remove(key);
        }
    }

    pub fn total(&self) -> usize {
        self.capacity.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn instances_go_to_the_least_loaded_host_and_never_past_its_slots() {
        let mut s = Slots::new(vec![2, 1]);
        let placed: Vec<Option<usize>> = ["a", "b", "c", "d"].iter().map(|k| s.book(k)).collect();
        assert_eq!(placed, [Some(0), Some(1), Some(0), None], "host 0 takes two, host 1 one, then all are full");
        s.release(0, "a");
        assert_eq!(s.book("e"), Some(0), "a freed slot is taken again");
        assert_eq!(s.book("f"), None);
        s.rebook(1, "g");
        s.release(1, "b");
        assert_eq!(s.book("h"), None, "a re-attached instance holds its slot");
        assert_eq!(s.total(), 3);
    }
}
