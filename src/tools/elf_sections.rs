//! A bounds-checked reader of an ELF file's section headers, for the two things the symbol
//! writer needs before (or beside) the full ELF reader: refusing compressed sections that claim
//! absurd sizes, and naming executable sections the way Mozilla's dump_syms does. Every read is
//! checked; a file it cannot make sense of yields no sections.

/// One section header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Offset of the name in the section-name string table.
    name: u64,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`: where the section is loaded, relative to the module's base.
    pub addr: u64,
    /// `sh_offset`: where its bytes are in the file.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
}

/// `SHF_EXECINSTR`: the section holds code.
pub const SHF_EXECINSTR: u64 = 0x4;
/// `SHF_COMPRESSED`: the section's bytes start with a compression header.
pub const SHF_COMPRESSED: u64 = 0x800;

/// The section headers of an ELF file (32- or 64-bit, either byte order).
pub struct Sections<'a> {
    data: &'a [u8],
    wide: bool,
    big: bool,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    names: Option<u64>,
}

impl<'a> Sections<'a> {
    /// The section headers of `data`, or `None` if it is not an ELF file with a readable
    /// header.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&class, &endian) = (data.get(4)?, data.get(5)?);
        if data.get(..4) != Some(b"\x7fELF") || !(1..=2).contains(&class) {
            return None;
        }
        let mut s = Sections {
            data,
            wide: class == 2,
            big: endian == 2,
            shoff: 0,
            shentsize: 0,
            shnum: 0,
            names: None,
        };
        let wide = s.wide;
        s.shoff = s.uint(if wide { 0x28 } else { 0x20 }, s.word())?;
        s.shentsize = s.uint(if wide { 0x3a } else { 0x2e }, 2)?;
        // At most 65 535 headers (extended numbering is not followed).
        s.shnum = s.uint(if wide { 0x3c } else { 0x30 }, 2)?;
        let shstrndx = s.uint(if wide { 0x3e } else { 0x32 }, 2)?;
        s.names = s.get(shstrndx).map(|h| h.offset);
        Some(s)
    }

    fn word(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }

    /// The unsigned integer of `len` bytes at `at`, in the file's byte order.
    pub fn uint(&self, at: u64, len: usize) -> Option<u64> {
        let b = self.data.get(usize::try_from(at).ok()?..)?.get(..len)?;
        let fold = |v: u64, byte: &u8| v << 8 | u64::from(*byte);
        Some(match self.big {
            true => b.iter().fold(0, fold),
            false => b.iter().rev().fold(0, fold),
        })
    }

    /// The word (4 or 8 bytes, by the file's class) at `at`.
    pub fn word_at(&self, at: u64) -> Option<u64> {
        self.uint(at, self.word())
    }

    /// Section header `i`, if it lies inside the file.
    pub fn get(&self, i: u64) -> Option<Section> {
        let at = self.shoff.checked_add(i.checked_mul(self.shentsize)?)?;
        let field = |off: u64, len: usize| self.uint(at.checked_add(off)?, len);
        let name = field(0, 4)?;
        Some(match self.wide {
            true => Section {
                name,
                flags: field(8, 8)?,
                addr: field(16, 8)?,
                offset: field(24, 8)?,
                size: field(32, 8)?,
            },
            false => Section {
                name,
                flags: field(8, 4)?,
                addr: field(12, 4)?,
                offset: field(16, 4)?,
                size: field(20, 4)?,
            },
        })
    }

    /// Every readable section header, in order (stops at the first one outside the file).
    pub fn iter(&self) -> impl Iterator<Item = Section> + '_ {
        (0..self.shnum).map_while(|i| self.get(i))
    }

    /// The name of `section` (bytes up to the NUL, at most 4 KiB), if readable.
    pub fn name(&self, section: &Section) -> Option<&'a [u8]> {
        let at = self.names?.checked_add(section.name)?;
        let rest = self.data.get(usize::try_from(at).ok()?..)?;
        let rest = &rest[..rest.len().min(4096)];
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    }
}

/// How much larger than its compressed bytes a compressed section may claim to be.
const MAX_INFLATION: u64 = 100;

/// Refuses an ELF file with a compressed section (`SHF_COMPRESSED`, or GNU `.zdebug_*`) whose
/// stated uncompressed size is more than 100 times its compressed size (plus
/// 1 MiB): the ELF reader allocates that size up front, so a crafted header would make it ask
/// for terabytes and abort. Files it cannot make sense of are left to the ELF reader.
pub fn check_compressed_sections(data: &[u8]) -> Result<(), super::ToolError> {
    let Some(sections) = Sections::parse(data) else {
        return Ok(());
    };
    for (i, s) in sections.iter().enumerate() {
        let limit = s.size.saturating_mul(MAX_INFLATION).saturating_add(1 << 20);
        let claimed = if s.flags & SHF_COMPRESSED != 0 {
            // Elf64_Chdr: type, reserved, size; Elf32_Chdr: type, size.
            sections.word_at(s.offset.saturating_add(if sections.wide { 8 } else { 4 }))
        } else {
            let zdebug = sections.name(&s).is_some_and(|n| n.starts_with(b".zdebug"));
            let header = data
                .get(usize::try_from(s.offset).unwrap_or(usize::MAX)..)
                .and_then(|d| d.get(..12));
            match header {
                Some(h) if zdebug && h.starts_with(b"ZLIB") => {
                    h[4..].try_into().ok().map(u64::from_be_bytes)
                }
                _ => None,
            }
        };
        if let Some(claimed) = claimed.filter(|&c| c > limit) {
            return Err(super::ToolError::new(
                super::ErrorKind::Symbols,
                format!(
                    "section {i} claims {claimed} bytes once decompressed, from {}: refused",
                    s.size
                ),
            ));
        }
    }
    Ok(())
}

/// The executable sections of the ELF file `data`, as (name, address): dump_syms gives each
/// one a `PUBLIC` record (`<.plt ELF section in libfoo.so>`) where no symbol starts, so that
/// addresses in PLT stubs resolve to something that says where they are.
pub fn executable_sections(data: &[u8]) -> Vec<(String, u64)> {
    let Some(sections) = Sections::parse(data) else {
        return Vec::new();
    };
    sections
        .iter()
        .filter(|s| s.flags & SHF_EXECINSTR != 0)
        .map(|s| {
            let name = sections.name(&s).unwrap_or(b"unknown");
            (String::from_utf8_lossy(name).into_owned(), s.addr)
        })
        .collect()
}
