//! A compressed radix tree over byte strings, built once, answering "every stored key that is
//! a prefix of this path, longest first" without allocating.
//!
//! # Why hand-written
//! The router's prefix index needs exactly that query, and fast: it runs on every request.
//! `patricia_tree::PatriciaMap` (used before) keeps children as linked sibling lists, so a
//! numbered prefix such as `/static/s12344/` in a 100k-route index visits ~25 nodes and the
//! lookup missed the router's latency target; no well-kept crate offers this query on a
//! layout that is fast for it. This tree is small and does only what the router needs.
//!
//! # Layout
//! Each node holds a compressed label (the bytes from its parent to it; empty only for the
//! root), an optional value, and its children, found by their first byte: a sorted byte array
//! `first` next to the `children` array in the same order. Small fan-outs are scanned
//! linearly, large ones binary-searched. A lookup walks down from the root along the path,
//! collecting the value of every node whose whole key is a prefix of the path; they come out
//! shortest first and are handed back longest first.

/// Values kept inline by [`Prefixes`]; more matches than this (a path with more than this many
/// stored prefixes) spill into a heap buffer.
const INLINE: usize = 16;

/// Fan-out above which a child is found by binary search instead of a linear scan.
const LINEAR_MAX: usize = 16;

/// A map from byte strings to small `Copy` values with a prefix query; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct RadixTree<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug, Default)]
struct Node<V> {
    /// The bytes between the parent and this node; non-empty except at the root.
    label: Label,
    value: Option<V>,
    /// First byte of each child's label, sorted ascending, unique.
    first: Vec<u8>,
    /// Children in the order of `first`.
    children: Vec<Node<V>>,
}

/// Bytes kept inside [`Label`] itself, saving a memory access per visited node for short
/// labels (most are a few bytes: numbered keys branch every digit).
const LABEL_INLINE: usize = 22;

/// A node label: short ones inline, longer ones on the heap.
#[derive(Debug)]
enum Label {
    Inline { len: u8, bytes: [u8; LABEL_INLINE] },
    Heap(Box<[u8]>),
}

impl Default for Label {
    fn default() -> Label {
        Label::Inline {
            len: 0,
            bytes: [0; LABEL_INLINE],
        }
    }
}

impl From<&[u8]> for Label {
    fn from(b: &[u8]) -> Label {
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= LABEL_INLINE => {
                let mut bytes = [0; LABEL_INLINE];
                bytes[..b.len()].copy_from_slice(b);
                Label::Inline { len, bytes }
            }
            _ => Label::Heap(b.into()),
        }
    }
}

impl std::ops::Deref for Label {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Label::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Label::Heap(b) => b,
        }
    }
}

impl<V: Copy> Node<V> {
    fn leaf(label: &[u8], value: V) -> Node<V> {
        Node {
            label: label.into(),
            value: Some(value),
            first: Vec::new(),
            children: Vec::new(),
        }
    }

    #[inline]
    fn child(&self, b: u8) -> Option<&Node<V>> {
        let i = if self.first.len() <= LINEAR_MAX {
            self.first.iter().position(|&f| f == b)?
        } else {
            self.first.binary_search(&b).ok()?
        };
        self.children.get(i)
    }

    /// Cuts the label after `at` bytes (`0 < at < label.len()`): this node keeps the head and
    /// gets one child holding the tail with this node's former value and children.
    fn split(&mut self, at: usize) {
        let tail = Node {
            label: self.label[at..].into(),
            value: self.value.take(),
            first: std::mem::take(&mut self.first),
            children: std::mem::take(&mut self.children),
        };
        self.label = self.label[..at].into();
        self.first = vec![tail.label[0]];
        self.children = vec![tail];
    }

    fn shrink(&mut self) {
        self.first.shrink_to_fit();
        self.children.shrink_to_fit();
        for child in &mut self.children {
            child.shrink();
        }
    }

    fn for_each_value(&mut self, f: &mut impl FnMut(&mut V)) {
        if let Some(value) = &mut self.value {
            f(value);
        }
        for child in &mut self.children {
            child.for_each_value(f);
        }
    }
}

impl<V: Copy + Default> RadixTree<V> {
    /// Number of keys stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub(crate) fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let mut node = &mut self.root;
        let mut rest = key;
        loop {
            let Some(&b) = rest.first() else {
                let old = node.value.replace(value);
                if old.is_none() {
                    self.len += 1;
                }
                return old;
            };
            let i = match node.first.binary_search(&b) {
                Ok(i) => i,
                Err(i) => {
                    node.first.insert(i, b);
                    node.children.insert(i, Node::leaf(rest, value));
                    self.len += 1;
                    return None;
                }
            };
            node = &mut node.children[i];
            let common = node
                .label
                .iter()
                .zip(rest)
                .take_while(|(x, y)| x == y)
                .count();
            if common < node.label.len() {
                node.split(common);
            }
            rest = &rest[common..];
        }
    }

    /// The value stored under exactly `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<V> {
        let mut node = &self.root;
        let mut rest = key;
        while let Some(&b) = rest.first() {
            node = node.child(b)?;
            rest = rest.strip_prefix(&*node.label)?;
        }
        node.value
    }

    /// Releases spare capacity left by the inserts; call once the tree is complete.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.root.shrink();
    }

    /// Calls `f` on every stored value (in key order), e.g. to rewrite them once built.
    pub(crate) fn for_each_value_mut(&mut self, mut f: impl FnMut(&mut V)) {
        self.root.for_each_value(&mut f);
    }

    /// The values of every stored key that is a prefix of `path` (the empty key and `path`
    /// itself included), longest key first.
    #[inline]
    pub(crate) fn prefixes(&self, path: &[u8]) -> Prefixes<V> {
        let mut out = Prefixes::default();
        let mut node = &self.root;
        let mut rest = path;
        loop {
            if let Some(value) = node.value {
                out.push(value);
            }
            let Some(&b) = rest.first() else { break };
            let Some(child) = node.child(b) else { break };
            let Some(after) = rest.strip_prefix(&*child.label) else {
                break;
            };
            rest = after;
            node = child;
        }
        out
    }
}

/// Values found by [`RadixTree::prefixes`], iterated longest key first. Holds up to 16 values
/// inline; only a path with more stored prefixes than that allocates.
#[derive(Debug, Default)]
pub(crate) struct Prefixes<V> {
    inline: [V; INLINE],
    /// Values past the first [`INLINE`], in the same shortest-first order.
    spill: Vec<V>,
    len: usize,
}

impl<V: Copy> Prefixes<V> {
    #[inline]
    fn push(&mut self, value: V) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = value,
            None => self.spill.push(value),
        }
        self.len += 1;
    }
}

impl<V: Copy> Iterator for Prefixes<V> {
    type Item = V;

    #[inline]
    fn next(&mut self) -> Option<V> {
        self.len = self.len.checked_sub(1)?;
        match self.inline.get(self.len) {
            Some(&value) => Some(value),
            None => self.spill.pop(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<V: Copy> ExactSizeIterator for Prefixes<V> {}

#[cfg(test)]
mod tests {
    use super::RadixTree;

    fn tree(keys: &[&str]) -> RadixTree<u32> {
        let mut t = RadixTree::<u32>::default();
        for (i, k) in keys.iter().enumerate() {
            let v = u32::try_from(i).expect("few keys");
            assert_eq!(t.insert(k.as_bytes(), v), None, "duplicate key {k:?}");
        }
        assert_eq!(t.len(), keys.len());
        t
    }

    /// The keys (by index into `keys`) that `prefixes(path)` yields, in order.
    fn found<'k>(t: &RadixTree<u32>, keys: &[&'k str], path: &str) -> Vec<&'k str> {
        t.prefixes(path.as_bytes())
            .map(|v| keys[v as usize])
            .collect()
    }

    /// Reference answer: every key that is a prefix of `path`, longest first.
    fn expected<'k>(keys: &[&'k str], path: &str) -> Vec<&'k str> {
        let mut v: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| path.starts_with(k))
            .collect();
        v.sort_by_key(|k| std::cmp::Reverse(k.len()));
        v
    }

    #[test]
    fn empty_tree_and_empty_path() {
        let t = RadixTree::<u32>::default();
        assert_eq!(t.prefixes(b"/a").count(), 0);
        assert_eq!(t.prefixes(b"").count(), 0);
        assert_eq!(t.get(b""), None);
    }

    #[test]
    fn empty_key_matches_everything() {
        let keys = ["", "/a"];
        let t = tree(&keys);
        assert_eq!(found(&t, &keys, ""), [""]);
        assert_eq!(found(&t, &keys, "/b"), [""]);
        assert_eq!(found(&t, &keys, "/abc"), ["/a", ""]);
        assert_eq!(t.get(b""), Some(0));
    }

    #[test]
    fn key_equal_to_path() {
        let keys = ["/foo", "/foo/", "/f"];
        let t = tree(&keys);
        assert_eq!(found(&t, &keys, "/foo"), ["/foo", "/f"]);
        assert_eq!(found(&t, &keys, "/foo/"), ["/foo/", "/foo", "/f"]);
        assert_eq!(found(&t, &keys, "/fo"), ["/f"]);
        assert_eq!(found(&t, &keys, "/"), Vec::<&str>::new());
    }

    #[test]
    fn split_in_the_middle_of_a_label() {
        // `/static/abc` is stored first as one label, then cut at `/static/a` and `/st`.
        let keys = ["/static/abc", "/static/a", "/st", "/static/abd"];
        let t = tree(&keys);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k.as_bytes()), Some(i as u32), "{k}");
        }
        assert_eq!(t.get(b"/static/ab"), None);
        assert_eq!(t.get(b"/s"), None);
        assert_eq!(t.get(b"/static/abcd"), None);
        assert_eq!(
            found(&t, &keys, "/static/abcdef"),
            ["/static/abc", "/static/a", "/st"]
        );
        assert_eq!(
            found(&t, &keys, "/static/abd"),
            ["/static/abd", "/static/a", "/st"]
        );
        // A path that leaves a label half-way stops there.
        assert_eq!(found(&t, &keys, "/static/ax"), ["/static/a", "/st"]);
        assert_eq!(found(&t, &keys, "/stat"), ["/st"]);
        assert_eq!(found(&t, &keys, "/s"), Vec::<&str>::new());
    }

    #[test]
    fn values_can_be_rewritten() {
        let keys = ["/b", "/a/", "", "/a"];
        let mut t = tree(&keys);
        t.for_each_value_mut(|v| *v += 10);
        assert_eq!(t.prefixes(b"/a/x").collect::<Vec<_>>(), [11, 13, 12]);
        assert_eq!(t.get(b"/b"), Some(10));
    }

    #[test]
    fn insert_replaces_and_counts_once() {
        let mut t = RadixTree::<u32>::default();
        assert_eq!(t.insert(b"/a/b", 1), None);
        assert_eq!(t.insert(b"/a", 2), None);
        assert_eq!(t.insert(b"/a/b", 3), Some(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.prefixes(b"/a/b/c").collect::<Vec<_>>(), [3, 2]);
    }

    #[test]
    fn many_siblings_linear_and_binary_search() {
        // 128 single-byte children of `/x` (beyond the linear-scan limit), inserted in a
        // scrambled order, plus numbered prefixes like the router's.
        let mut owned: Vec<String> = (0..128u32)
            .map(|n| format!("/x{}", char::from((n * 37 % 128) as u8)))
            .collect();
        for i in (0..2000).rev() {
            owned.push(format!("/static/s{i}/"));
        }
        owned.push("/static/s".to_owned());
        let keys: Vec<&str> = owned.iter().map(String::as_str).collect();
        let t = tree(&keys);
        for k in &keys {
            let path = format!("{k}tail");
            assert_eq!(found(&t, &keys, &path), expected(&keys, &path), "{path}");
        }
        for path in [
            "/static/s1234/x",
            "/static/s12/",
            "/static/s9999/",
            "/x",
            "/y",
        ] {
            assert_eq!(found(&t, &keys, path), expected(&keys, path), "{path}");
        }
    }

    #[test]
    fn longest_first_beyond_inline_buffer() {
        // Every prefix of a 100-byte path is a key: 101 matches, more than kept inline.
        let path = "/a".repeat(50);
        let owned: Vec<String> = (0..=path.len()).map(|n| path[..n].to_owned()).collect();
        // Insert in an order that makes later keys split earlier labels.
        let mut keys: Vec<&str> = owned.iter().map(String::as_str).collect();
        keys.reverse();
        let t = tree(&keys);
        let got = found(&t, &keys, &path);
        assert_eq!(got.len(), 101);
        assert_eq!(got, expected(&keys, &path));
        let got = found(&t, &keys, &path[..17]);
        assert_eq!(got, expected(&keys, &path[..17]));
        assert_eq!(t.prefixes(path.as_bytes()).len(), 101);
    }

    #[test]
    fn random_keys_agree_with_reference() {
        // Small alphabet so keys share prefixes heavily; a fixed LCG keeps it reproducible.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut owned: Vec<String> = Vec::new();
        for _ in 0..300 {
            let len = next() % 8;
            owned.push((0..len).map(|_| ['/', 'a', 'b'][next() % 3]).collect());
        }
        owned.sort();
        owned.dedup();
        let keys: Vec<&str> = owned.iter().map(String::as_str).collect();
        let mut t = tree(&keys);
        t.shrink_to_fit();
        for _ in 0..500 {
            let len = next() % 10;
            let path: String = (0..len).map(|_| ['/', 'a', 'b', 'c'][next() % 4]).collect();
            assert_eq!(found(&t, &keys, &path), expected(&keys, &path), "{path}");
        }
    }
}
