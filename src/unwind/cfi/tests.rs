//! Unit tests over hand-assembled CFI.

use super::eh_frame_hdr::EhFrameHdr;
use super::*;
use crate::unwind::SliceStack;
use std::vec::Vec;

const EH_FRAME: u64 = 0x10_0000;

/// Assembles `.eh_frame` bytes: CIEs and FDEs at known offsets.
#[derive(Default)]
struct Asm {
    bytes: Vec<u8>,
}

impl Asm {
    /// Adds a CIE with x86_64's return-address column (16); returns its offset.
    fn cie(&mut self, aug: &str, aug_data: &[u8], data_align: i8, instructions: &[u8]) -> usize {
        self.cie_ra(aug, aug_data, data_align, 16, instructions)
    }

    /// Adds a CIE with return-address column `ra`; returns its offset.
    fn cie_ra(
        &mut self,
        aug: &str,
        aug_data: &[u8],
        data_align: i8,
        ra: u8,
        instructions: &[u8],
    ) -> usize {
        let at = self.bytes.len();
        let mut body = Vec::new();
        body.extend_from_slice(&0u32.to_le_bytes()); // CIE id
        body.push(1); // version
        body.extend_from_slice(aug.as_bytes());
        body.push(0);
        body.push(1); // code alignment
        body.push(data_align as u8 & 0x7f); // data alignment, sleb (small values)
        body.push(ra); // return address register
        if aug.starts_with('z') {
            body.push(aug_data.len() as u8);
            body.extend_from_slice(aug_data);
        }
        body.extend_from_slice(instructions);
        self.entry(&body);
        at
    }

    /// Adds an FDE covering [begin, begin + len) with encoding `enc`; returns its offset.
    fn fde(
        &mut self,
        cie: usize,
        enc: u8,
        begin: u64,
        len: u64,
        z: bool,
        instructions: &[u8],
    ) -> usize {
        let at = self.bytes.len();
        let mut body = Vec::new();
        let id_pos = at + 4;
        body.extend_from_slice(&((id_pos - cie) as u32).to_le_bytes());
        let here = EH_FRAME + id_pos as u64 + 4;
        let (b, l): (Vec<u8>, Vec<u8>) = match enc {
            0x1b => (
                ((begin as i64 - here as i64) as i32).to_le_bytes().to_vec(),
                (len as u32).to_le_bytes().to_vec(),
            ),
            0x03 => (
                (begin as u32).to_le_bytes().to_vec(),
                (len as u32).to_le_bytes().to_vec(),
            ),
            0x00 | 0x0c => (begin.to_le_bytes().to_vec(), len.to_le_bytes().to_vec()),
            0x02 => (
                (begin as u16).to_le_bytes().to_vec(),
                (len as u16).to_le_bytes().to_vec(),
            ),
            _ => panic!("encoding {enc:#x} not supported by the test assembler"),
        };
        body.extend_from_slice(&b);
        body.extend_from_slice(&l);
        if z {
            body.push(0);
        }
        body.extend_from_slice(instructions);
        self.entry(&body);
        at
    }

    fn entry(&mut self, body: &[u8]) {
        self.bytes
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(body);
    }

    fn section(&self) -> Section<'_> {
        Section {
            data: &self.bytes,
            avma: EH_FRAME,
        }
    }
}

/// The usual x86_64 CIE: "zR", pcrel|sdata4 FDEs, CFA = rsp + 8, return address at CFA - 8.
fn standard(asm: &mut Asm) -> usize {
    asm.cie("zR", &[0x1b], -8, &[0x0c, 7, 8, 0x90, 1])
}

fn row(asm: &Asm, fde: usize, pc: u64) -> Result<Row, CfiError> {
    let f = cie_fde::parse_fde(asm.section(), fde)?;
    program::row_at(asm.section(), &f, pc)
}

// x86_64 register numbers (rsp 7, rbp 6, return address 16): the aarch64 twin follows.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_typical_function_prologue_and_epilogue() {
    let mut asm = Asm::default();
    let cie = standard(&mut asm);
    // push rbp; mov rbp, rsp; ...; remember; pop rbp (CFA rsp+8); ret; restore.
    let fde = asm.fde(
        cie,
        0x1b,
        0x1000,
        0x100,
        true,
        &[
            0x41, 0x0e, 16, 0x86, 2, // +1: CFA = rsp+16, rbp at CFA-16
            0x43, 0x0d, 6, // +3: CFA = rbp+16
            0x60, 0x0a, 0x0c, 7, 8, // +0x20: remember; CFA = rsp+8
            0x41, 0x0b, // +1: restore
        ],
    );
    let f = cie_fde::parse_fde(asm.section(), fde).unwrap();
    assert_eq!((f.pc_begin, f.pc_end), (0x1000, 0x1100));
    let at = |pc| row(&asm, fde, pc).unwrap();
    assert_eq!(at(0x1000).cfa, CfaRule::RegOffset { reg: 7, offset: 8 });
    assert_eq!(at(0x1000).reg(16), RegRule::Offset(-8));
    assert_eq!(at(0x1000).reg(6), RegRule::SameValue);
    assert_eq!(at(0x1001).cfa, CfaRule::RegOffset { reg: 7, offset: 16 });
    assert_eq!(at(0x1001).reg(6), RegRule::Offset(-16));
    assert_eq!(at(0x1004).cfa, CfaRule::RegOffset { reg: 6, offset: 16 });
    assert_eq!(at(0x1023).cfa, CfaRule::RegOffset { reg: 6, offset: 16 });
    assert_eq!(at(0x1024).cfa, CfaRule::RegOffset { reg: 7, offset: 8 });
    assert_eq!(at(0x1025).cfa, CfaRule::RegOffset { reg: 6, offset: 16 });
    assert_eq!(at(0x10ff).reg(6), RegRule::Offset(-16));
    // At the `ret` (0x1024) rbp is popped but the rule still puts it at CFA - 16, below rsp,
    // as LLVM's epilogues leave it: the step keeps rbp and reads only the return address (the
    // stack reader refuses anything below rsp).
    let ret_only = 0x9999u64.to_le_bytes();
    let mem = SliceStack {
        base: 0x7000,
        bytes: &ret_only,
    };
    let mut regs = Regs::new(0x1024, 0x7000, 0x7777);
    let step = apply_row(asm.section(), &f, &at(0x1024), &mut regs, &mem).unwrap();
    assert!(matches!(step, Step::Caller { .. }));
    assert_eq!((regs.ip(), regs.sp(), regs.fp()), (0x9999, 0x7008, 0x7777));
}

#[test]
fn every_register_rule_instruction() {
    let mut asm = Asm::default();
    let cie = standard(&mut asm);
    let fde = asm.fde(
        cie,
        0x1b,
        0x2000,
        0x1000,
        true,
        &[
            0x07,
            3, // undefined rbx
            0x08,
            12, // same_value r12
            0x09,
            13,
            14, // r13 in r14
            0x05,
            14,
            3, // offset_extended r14 at CFA-24
            0x11,
            15,
            0x7e, // offset_extended_sf r15 at CFA + (-2 * -8) = +16
            0x14,
            1,
            2, // val_offset rdx = CFA - 16
            0x15,
            2,
            0x01, // val_offset_sf rcx = CFA - 8
            0x2f,
            4,
            1, // GNU_negative_offset_extended rsi at CFA + 8
            0x2e,
            32,   // GNU_args_size (ignored)
            0x00, // nop
            0x02,
            0x10,      // advance_loc1 16 -> 0x2010
            0xc0 | 13, // restore r13 (initial: same value)
            0x06,
            14, // restore_extended r14
            0x03,
            0x00,
            0x01, // advance_loc2 256 -> 0x2110
            0x12,
            6,
            0x7e, // def_cfa_sf rbp + 16
            0x04,
            0x00,
            0x01,
            0x00,
            0x00, // advance_loc4 256 -> 0x2210
            0x13,
            0x7c, // def_cfa_offset_sf 32
            0x01,
            0x00,
            0x03,
            0,
            0, // set_loc (pcrel sdata4 relative to here): computed below
        ],
    );
    let r = row(&asm, fde, 0x2000).unwrap();
    assert_eq!(r.reg(3), RegRule::Undefined);
    assert_eq!(r.reg(12), RegRule::SameValue);
    assert_eq!(r.reg(13), RegRule::Register(14));
    assert_eq!(r.reg(14), RegRule::Offset(-24));
    assert_eq!(r.reg(15), RegRule::Offset(16));
    assert_eq!(r.reg(1), RegRule::ValOffset(-16));
    assert_eq!(r.reg(2), RegRule::ValOffset(-8));
    assert_eq!(r.reg(4), RegRule::Offset(8));
    let r = row(&asm, fde, 0x2010).unwrap();
    assert_eq!(
        (r.reg(13), r.reg(14)),
        (RegRule::SameValue, RegRule::SameValue)
    );
    assert_eq!(r.cfa, CfaRule::RegOffset { reg: 7, offset: 8 });
    assert_eq!(
        row(&asm, fde, 0x2110).unwrap().cfa,
        CfaRule::RegOffset { reg: 6, offset: 16 }
    );
    assert_eq!(
        row(&asm, fde, 0x2210).unwrap().cfa,
        CfaRule::RegOffset { reg: 6, offset: 32 }
    );
}

// x86_64 register numbers and glibc's x86_64 signal trampoline.
#[cfg(target_arch = "x86_64")]
#[test]
fn expressions_plt_and_signal_frames() {
    let mut asm = Asm::default();
    let cie = standard(&mut asm);
    // The PLT rule: CFA = rsp + 8 + ((rip & 15) >= 11) << 3.
    let plt = [
        0x0f, 11, 0x77, 8, 0x80, 0, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22,
    ];
    let fde = asm.fde(cie, 0x1b, 0x3000, 0x40, true, &plt);
    let r = row(&asm, fde, 0x3000).unwrap();
    let f = cie_fde::parse_fde(asm.section(), fde).unwrap();
    let stack: Vec<u8> = (0..64u64)
        .flat_map(|i| (0x9000 + i).to_le_bytes())
        .collect();
    let mem = SliceStack {
        base: 0x7000,
        bytes: &stack,
    };
    for (ip, cfa) in [(0x3006, 0x7008), (0x300b, 0x7010), (0x301f, 0x7010)] {
        let mut regs = Regs::new(ip, 0x7000, 0);
        let step = apply_row(asm.section(), &f, &r, &mut regs, &mem).unwrap();
        let Step::Caller { signal_frame } = step else {
            panic!()
        };
        assert_eq!(regs.sp(), cfa, "ip {ip:#x}");
        assert_eq!(regs.ip(), 0x9000 + (cfa - 8 - 0x7000) / 8);
        assert!(!signal_frame);
    }
    // A signal trampoline ("zRS"): registers saved in a structure on the stack.
    let sig_cie = asm.cie("zRS", &[0x1b], -8, &[]);
    let sig = asm.fde(
        sig_cie,
        0x1b,
        0x4000,
        0x10,
        true,
        &[
            0x0f, 3, 0x77, 0x10, 0x06, // CFA = [rsp + 16]
            0x10, 16, 2, 0x77, 0x18, // rip at rsp + 24
            0x10, 6, 2, 0x77, 0x20, // rbp at rsp + 32
            0x16, 7, 3, 0x77, 0x28, 0x06, // rsp = [rsp + 40]
        ],
    );
    let f = cie_fde::parse_fde(asm.section(), sig).unwrap();
    assert!(f.cie.signal_frame);
    let r = program::row_at(asm.section(), &f, 0x4000).unwrap();
    let mut regs = Regs::new(0x4000, 0x7000, 0);
    let Step::Caller { signal_frame } = apply_row(asm.section(), &f, &r, &mut regs, &mem).unwrap()
    else {
        panic!()
    };
    assert!(signal_frame);
    assert_eq!((regs.ip(), regs.fp(), regs.sp()), (0x9003, 0x9004, 0x9005));
    // Expression evaluation over every arithmetic operator.
    let eval = |code: &[u8]| {
        let mut bytes = std::vec![code.len() as u8];
        bytes.extend_from_slice(code);
        expr::evaluate(
            Section {
                data: &bytes,
                avma: 0,
            },
            0,
            &Regs::new(0, 0x7000, 0),
            &mem,
            None,
        )
    };
    assert_eq!(eval(&[0x35, 0x33, 0x1c]), Ok(2)); // 5 - 3
    assert_eq!(eval(&[0x35, 0x33, 0x1e, 0x37, 0x1d]), Ok(15 % 7));
    assert_eq!(eval(&[0x11, 0x7f, 0x1f]), Ok(1)); // neg(-1)
    assert_eq!(eval(&[0x11, 0x7c, 0x32, 0x1b]), Ok((-2i64) as u64)); // -4 / 2
    assert_eq!(eval(&[0x08, 0xf0, 0x34, 0x25]), Ok(0x0f)); // 0xf0 >> 4
    assert_eq!(eval(&[0x11, 0x70, 0x32, 0x26]), Ok((-4i64) as u64)); // -16 >>a 2
    assert_eq!(eval(&[0x31, 0x32, 0x16, 0x1c]), Ok(1)); // swap: 2 - 1
    assert_eq!(eval(&[0x31, 0x32, 0x33, 0x17, 0x13, 0x13]), Ok(3)); // rot
    assert_eq!(eval(&[0x31, 0x32, 0x14, 0x22, 0x22]), Ok(4)); // over
    assert_eq!(eval(&[0x31, 0x32, 0x15, 1, 0x22, 0x22]), Ok(4)); // pick 1
    assert_eq!(eval(&[0x30, 0x28, 2, 0, 0x35, 0x36]), Ok(6)); // bra not taken
    assert_eq!(eval(&[0x31, 0x28, 1, 0, 0x35, 0x36]), Ok(6)); // bra taken over lit5
    assert_eq!(eval(&[0x2f, 1, 0, 0x35, 0x37]), Ok(7)); // skip
    assert_eq!(eval(&[0x92, 7, 8, 0x94, 4]), Ok(0x9001)); // bregx rsp+8, deref_size 4
    assert_eq!(
        eval(&[0x0a, 0x34, 0x12, 0x0d, 1, 0, 0, 0, 0x22]),
        Ok(0x1235)
    );
    assert_eq!(eval(&[]), Err(CfiError::BadExpression));
    assert_eq!(eval(&[0x22]), Err(CfiError::BadExpression)); // stack underflow
    assert_eq!(eval(&[0x2f, 0xfd, 0xff]), Err(CfiError::BadExpression)); // skip backwards forever
    assert_eq!(eval(&[0x30, 0x30, 0x1b]), Err(CfiError::BadExpression)); // divide by zero
    assert_eq!(
        eval(&[0x0e, 0, 0, 0, 0, 1, 0, 0, 0, 0x06]),
        Err(CfiError::BadRead)
    );
    assert_eq!(eval(&[0x50]), Err(CfiError::BadExpression)); // a register location
}

#[test]
fn pointer_encodings_of_fdes_and_the_hdr_table() {
    let mut asm = Asm::default();
    let cies = [
        (0x1b, true),
        (0x03, true),
        (0x0c, true),
        (0x00, false),
        (0x02, true),
    ];
    let mut fdes = Vec::new();
    for (i, &(enc, z)) in cies.iter().enumerate() {
        let cie = if z {
            asm.cie("zR", &[enc], -8, &[0x0c, 7, 8, 0x90, 1])
        } else {
            asm.cie("", &[], -8, &[0x0c, 7, 8, 0x90, 1])
        };
        let begin = 0x5000 + i as u64 * 0x100;
        fdes.push((begin, asm.fde(cie, enc, begin, 0x80, z, &[])));
    }
    asm.bytes.extend_from_slice(&[0; 4]); // terminator
    for &(begin, off) in &fdes {
        let f = cie_fde::parse_fde(asm.section(), off).unwrap();
        assert_eq!((f.pc_begin, f.pc_end), (begin, begin + 0x80));
        // The linear scan finds each too.
        let found = cie_fde::scan_for_fde(asm.section(), begin + 0x10, 100)
            .unwrap()
            .unwrap();
        assert_eq!(found.pc_begin, begin);
    }
    assert_eq!(
        cie_fde::scan_for_fde(asm.section(), 0x5080, 100).unwrap(),
        None
    );
    // An .eh_frame_hdr whose datarel|sdata4 table lists the FDEs.
    let hdr_avma = 0x20_0000u64;
    let mut hdr = std::vec![1u8, 0x1b, 0x03, 0x3b];
    hdr.extend_from_slice(&((EH_FRAME as i64 - (hdr_avma as i64 + 4)) as i32).to_le_bytes());
    hdr.extend_from_slice(&(fdes.len() as u32).to_le_bytes());
    for &(begin, off) in &fdes {
        hdr.extend_from_slice(&((begin as i64 - hdr_avma as i64) as i32).to_le_bytes());
        hdr.extend_from_slice(
            &((EH_FRAME + off as u64) as i64 - hdr_avma as i64).to_le_bytes()[..4],
        );
    }
    let h = EhFrameHdr::parse(Section {
        data: &hdr,
        avma: hdr_avma,
    })
    .unwrap();
    assert_eq!(h.eh_frame_avma, EH_FRAME);
    let sections = ModuleSections {
        eh_frame_hdr: Some(Section {
            data: &hdr,
            avma: hdr_avma,
        }),
        eh_frame: Some(asm.section()),
        compiled: None,
    };
    for &(begin, _) in &fdes {
        for pc in [begin, begin + 0x7f] {
            assert_eq!(
                find_fde(&sections, pc).unwrap().unwrap().pc_begin,
                begin,
                "pc {pc:#x}"
            );
        }
        assert_eq!(
            find_fde(&sections, begin + 0x80).unwrap(),
            None,
            "a gap between FDEs"
        );
    }
    assert_eq!(find_fde(&sections, 0x10).unwrap(), None);
    assert!(EhFrameHdr::parse(Section {
        data: &hdr[..hdr.len() - 1],
        avma: hdr_avma
    })
    .is_err());
    assert!(EhFrameHdr::parse(Section {
        data: &[2, 0x1b, 3, 0x3b],
        avma: 0
    })
    .is_err());
}

#[test]
fn malformed_cfi_is_an_error_not_a_panic() {
    let mut asm = Asm::default();
    let cie = standard(&mut asm);
    let bad_op = asm.fde(cie, 0x1b, 0x6000, 0x10, true, &[0x3f]);
    assert_eq!(row(&asm, bad_op, 0x6000), Err(CfiError::BadInstruction));
    let deep = asm.fde(cie, 0x1b, 0x7000, 0x10, true, &[0x0a; 5]);
    assert_eq!(row(&asm, deep, 0x7000), Err(CfiError::RememberOverflow));
    let underflow = asm.fde(cie, 0x1b, 0x8000, 0x10, true, &[0x0b]);
    assert_eq!(row(&asm, underflow, 0x8000), Err(CfiError::BadInstruction));
    let cut = asm.fde(cie, 0x1b, 0x9000, 0x10, true, &[0x05, 0x80]);
    assert_eq!(row(&asm, cut, 0x9000), Err(CfiError::Truncated));
    assert_eq!(
        cie_fde::parse_fde(asm.section(), cie).err(),
        Some(CfiError::BadEntry)
    );
    assert!(cie_fde::parse_cie(asm.section(), bad_op).is_err());
    // Random bytes: never a panic.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..if cfg!(miri) { 200 } else { 20_000 } {
        let len = (x % 64) as usize + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let sec = Section {
            data: &bytes,
            avma: 0x1000,
        };
        let _ = cie_fde::scan_for_fde(sec, 0x1000 + (x % 64), 16);
        let _ = EhFrameHdr::parse(sec).and_then(|h| h.lookup(x % 0x2000));
        let stack = [0u8; 64];
        let _ = expr::evaluate(
            sec,
            0,
            &Regs::new(0, 0, 0),
            &SliceStack {
                base: 0,
                bytes: &stack,
            },
            Some(8),
        );
    }
}

/// aarch64: a prologue signing its return address (`paciasp`), saving the x29/x30 pair and
/// setting up x29; rows, compact rules and a step agree.
#[cfg(target_arch = "aarch64")]
#[test]
fn an_aarch64_prologue_with_pointer_authentication() {
    use crate::unwind::Rule;
    let mut asm = Asm::default();
    // "zR", pcrel|sdata4, data alignment -8, return address in x30, CFA = sp + 0.
    let cie = asm.cie_ra("zR", &[0x1b], -8, 30, &[0x0c, 31, 0]);
    let fde = asm.fde(
        cie,
        0x1b,
        0x1000,
        0x100,
        true,
        &[
            0x2d, // paciasp: DW_CFA_AARCH64_negate_ra_state
            0x44, 0x0e, 16, 0x9d, 2, 0x9e, 1, // +4 stp x29, x30, [sp, #-16]!
            0x44, 0x0d, 29, // +4 mov x29, sp: CFA = x29 + 16
        ],
    );
    let f = cie_fde::parse_fde(asm.section(), fde).unwrap();
    let at = |pc| row(&asm, fde, pc).unwrap();
    assert_eq!(at(0x1000).cfa, CfaRule::RegOffset { reg: 31, offset: 0 });
    assert_eq!(at(0x1004).reg(29), RegRule::Offset(-16));
    assert_eq!(at(0x1004).reg(30), RegRule::Offset(-8));
    assert_eq!(
        at(0x1008).cfa,
        CfaRule::RegOffset {
            reg: 29,
            offset: 16
        }
    );
    assert_eq!(Rule::from_row(&f, &at(0x1000)), Some(Rule::Leaf { cfa: 0 }));
    assert_eq!(
        Rule::from_row(&f, &at(0x1004)),
        Some(Rule::SpPair { cfa: 16, fp: 16 })
    );
    let compact = Rule::from_row(&f, &at(0x1008));
    assert_eq!(compact, Some(Rule::FpPair { cfa: 16, fp: 16 }));
    // The frame record at sp: saved x29, then the signed return address.
    let words: Vec<u8> = [0x7100u64, 0x5a00_0000_0000_4242]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let mem = SliceStack {
        base: 0x7000,
        bytes: &words,
    };
    let start = Regs::new(0x1010, 0x7000, 0x7000);
    let mut regs = start;
    let step = apply_row(asm.section(), &f, &at(0x1008), &mut regs, &mem).unwrap();
    assert!(matches!(step, Step::Caller { .. }));
    assert_eq!((regs.ip(), regs.sp(), regs.fp()), (0x4242, 0x7010, 0x7100));
    let mut by_rule = start;
    assert!(compact.unwrap().apply(&mut by_rule, &mem));
    assert_eq!(
        (by_rule.ip(), by_rule.sp(), by_rule.fp()),
        (regs.ip(), regs.sp(), regs.fp())
    );
}
