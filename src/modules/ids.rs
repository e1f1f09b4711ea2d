//! Identifier helpers that need no loaded module: GNU build ID notes and Breakpad's GUID
//! byte order (used by the ELF module map and by the tools on any system).

/// The descriptor of the `NT_GNU_BUILD_ID` note in a `PT_NOTE` segment.
pub fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let word =
            |i: usize| u32::from_ne_bytes([notes[i], notes[i + 1], notes[i + 2], notes[i + 3]]);
        let (namesz, descsz, kind) = (word(0) as usize, word(4) as usize, word(8));
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(name_end..name_end.checked_add(descsz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

/// Breakpad's GUID byte order: the first three fields (u32, u16, u16) byte-swapped.
pub fn guid_order(mut id: [u8; 16]) -> [u8; 16] {
    id[0..4].reverse();
    id[4..6].reverse();
    id[6..8].reverse();
    id
}
