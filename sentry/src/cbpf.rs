//! Classic BPF: the program check Linux makes when a filter is installed
//! (`bpf_check_classic`, plus seccomp's own instruction list for seccomp filters) and
//! one interpreter, run over a [`Input`]: `struct seccomp_data` for seccomp (32-bit
//! little-endian absolute loads only), or a frame for a packet socket's
//! `SO_ATTACH_FILTER` (byte, half-word and word loads in network order, absolute and
//! indexed, `BPF_MSH`, `BPF_MOD`, and the ancillary loads at `SKF_AD_OFF`).

use crate::errno::{Errno, SysResult};

/// Most instructions in one program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (`BPF_MEMWORDS`).
const MEM_WORDS: u32 = 16;
/// Size of `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
pub const DATA_SIZE: u32 = 64;

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

impl Insn {
    /// Decodes the 8-byte `sock_filter` layout.
    pub fn from_bytes(b: &[u8; 8]) -> Insn {
        Insn {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// A statement (no jump targets).
    pub const fn stmt(code: u16, k: u32) -> Insn {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A conditional jump.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code, jt, jf, k }
    }
}

/// Opcode parts (`linux/filter.h`, `linux/bpf_common.h`).
pub mod op {
    /// `BPF_LD`.
    pub const LD: u16 = 0x00;
    /// `BPF_LDX`.
    pub const LDX: u16 = 0x01;
    /// `BPF_ST`.
    pub const ST: u16 = 0x02;
    /// `BPF_STX`.
    pub const STX: u16 = 0x03;
    /// `BPF_ALU`.
    pub const ALU: u16 = 0x04;
    /// `BPF_JMP`.
    pub const JMP: u16 = 0x05;
    /// `BPF_RET`.
    pub const RET: u16 = 0x06;
    /// `BPF_MISC`.
    pub const MISC: u16 = 0x07;
    /// `BPF_W`.
    pub const W: u16 = 0x00;
    /// `BPF_H`.
    pub const H: u16 = 0x08;
    /// `BPF_B`.
    pub const B: u16 = 0x10;
    /// `BPF_IND`.
    pub const IND: u16 = 0x40;
    /// `BPF_MSH`.
    pub const MSH: u16 = 0xa0;
    /// `BPF_MOD`.
    pub const MOD: u16 = 0x90;
    /// `BPF_IMM`.
    pub const IMM: u16 = 0x00;
    /// `BPF_ABS`.
    pub const ABS: u16 = 0x20;
    /// `BPF_MEM`.
    pub const MEM: u16 = 0x60;
    /// `BPF_LEN`.
    pub const LEN: u16 = 0x80;
    /// `BPF_ADD`.
    pub const ADD: u16 = 0x00;
    /// `BPF_SUB`.
    pub const SUB: u16 = 0x10;
    /// `BPF_MUL`.
    pub const MUL: u16 = 0x20;
    /// `BPF_DIV`.
    pub const DIV: u16 = 0x30;
    /// `BPF_OR`.
    pub const OR: u16 = 0x40;
    /// `BPF_AND`.
    pub const AND: u16 = 0x50;
    /// `BPF_LSH`.
    pub const LSH: u16 = 0x60;
    /// `BPF_RSH`.
    pub const RSH: u16 = 0x70;
    /// `BPF_NEG`.
    pub const NEG: u16 = 0x80;
    /// `BPF_XOR`.
    pub const XOR: u16 = 0xa0;
    /// `BPF_JA`.
    pub const JA: u16 = 0x00;
    /// `BPF_JEQ`.
    pub const JEQ: u16 = 0x10;
    /// `BPF_JGT`.
    pub const JGT: u16 = 0x20;
    /// `BPF_JGE`.
    pub const JGE: u16 = 0x30;
    /// `BPF_JSET`.
    pub const JSET: u16 = 0x40;
    /// `BPF_K`.
    pub const K: u16 = 0x00;
    /// `BPF_X`.
    pub const X: u16 = 0x08;
    /// `BPF_A` (for `BPF_RET`).
    pub const A: u16 = 0x10;
    /// `BPF_TAX`.
    pub const TAX: u16 = 0x00;
    /// `BPF_TXA`.
    pub const TXA: u16 = 0x80;
}

use op::*;

/// True for the opcodes seccomp accepts (`seccomp_check_filter`'s list).
fn seccomp_allows(code: u16) -> bool {
    const ALU_OPS: [u16; 9] = [ADD, SUB, MUL, DIV, AND, OR, XOR, LSH, RSH];
    const JMP_OPS: [u16; 4] = [JEQ, JGE, JGT, JSET];
    match code {
        c if c == LD | W | ABS || c == LD | W | LEN || c == LDX | W | LEN => true,
        c if c == RET | K || c == RET | A => true,
        c if c == ALU | NEG => true,
        c if c == LD | IMM || c == LDX | IMM || c == LD | MEM || c == LDX | MEM => true,
        c if c == ST || c == STX || c == MISC | TAX || c == MISC | TXA => true,
        c if c == JMP | JA => true,
        c if c & 0x07 == ALU => {
            let src = c & 0x08;
            c == ALU | (c & 0xf0) | src && ALU_OPS.contains(&(c & 0xf0))
        }
        c if c & 0x07 == JMP => {
            let src = c & 0x08;
            c == JMP | (c & 0xf0) | src && JMP_OPS.contains(&(c & 0xf0))
        }
        _ => false,
    }
}

fn is_cond_jump(code: u16) -> bool {
    code & 0x07 == JMP && code & 0xf0 != JA
}

/// True for the opcodes `bpf_check_classic` knows (socket filters).
fn socket_allows(code: u16) -> bool {
    const ALU_OPS: [u16; 10] = [ADD, SUB, MUL, DIV, MOD, AND, OR, XOR, LSH, RSH];
    const JMP_OPS: [u16; 4] = [JEQ, JGE, JGT, JSET];
    match code & 0x07 {
        LD => {
            let size = code & 0x18;
            let mode = code & 0xe0;
            code & !0xf8 == LD
                && match mode {
                    ABS | IND => size == W || size == H || size == B,
                    LEN | IMM | MEM => size == W,
                    _ => false,
                }
        }
        LDX => [LDX | W | IMM, LDX | W | MEM, LDX | W | LEN, LDX | B | MSH].contains(&code),
        ST | STX => code == ST || code == STX,
        ALU => {
            code == ALU | NEG
                || (code & 0x07 == ALU && ALU_OPS.contains(&(code & 0xf0)) && code & !0xf8 == ALU)
        }
        JMP => code == JMP | JA || (JMP_OPS.contains(&(code & 0xf0)) && code & !0xf8 == JMP),
        RET => code == RET | K || code == RET | A,
        MISC => code == MISC | TAX || code == MISC | TXA,
        _ => false,
    }
}

/// Checks a seccomp program as Linux does before it is attached: length, known
/// opcodes, constant operands (no division by zero, shifts below 32, scratch indexes
/// below 16), jumps inside the program, a return last, no scratch word read before
/// it is written on every path, and seccomp's rules (32-bit aligned loads inside
/// `seccomp_data`). Any failure is `EINVAL`.
pub fn check(prog: &[Insn]) -> SysResult<()> {
    check_with(prog, true)
}

/// Checks a socket filter (`SO_ATTACH_FILTER`) as `bpf_check_classic` does: every
/// classic opcode, the same rules on operands, jumps, scratch memory and the final
/// return. Any failure is `EINVAL`.
pub fn check_socket(prog: &[Insn]) -> SysResult<()> {
    check_with(prog, false)
}

fn check_with(prog: &[Insn], seccomp: bool) -> SysResult<()> {
    let len = prog.len();
    if len == 0 || len > MAX_INSNS {
        return Err(Errno::EINVAL);
    }
    for (pc, i) in prog.iter().enumerate() {
        let known = if seccomp {
            seccomp_allows(i.code)
        } else {
            socket_allows(i.code)
        };
        if !known {
            return Err(Errno::EINVAL);
        }
        let code = i.code;
        if (code == ALU | DIV | K || code == ALU | MOD | K) && i.k == 0 {
            return Err(Errno::EINVAL);
        }
        if (code == ALU | LSH | K || code == ALU | RSH | K) && i.k >= 32 {
            return Err(Errno::EINVAL);
        }
        if (code == LD | MEM || code == LDX | MEM || code == ST || code == STX) && i.k >= MEM_WORDS
        {
            return Err(Errno::EINVAL);
        }
        if code == JMP | JA && i.k as u64 >= (len - pc - 1) as u64 {
            return Err(Errno::EINVAL);
        }
        if is_cond_jump(code) && (pc + i.jt as usize + 1 >= len || pc + i.jf as usize + 1 >= len) {
            return Err(Errno::EINVAL);
        }
        if seccomp && code == LD | W | ABS && (i.k >= DATA_SIZE || i.k & 3 != 0) {
            return Err(Errno::EINVAL);
        }
    }
    let last = prog[len - 1].code;
    if last != RET | K && last != RET | A {
        return Err(Errno::EINVAL);
    }
    check_memory(prog)
}

/// Every scratch load must follow a store to that word on every path to it.
fn check_memory(prog: &[Insn]) -> SysResult<()> {
    let mut masks = vec![u16::MAX; prog.len()];
    let mut valid: u16 = 0;
    for (pc, i) in prog.iter().enumerate() {
        valid &= masks[pc];
        let code = i.code;
        if code == ST || code == STX {
            valid |= 1 << i.k;
        } else if code == LD | MEM || code == LDX | MEM {
            if valid & (1 << i.k) == 0 {
                return Err(Errno::EINVAL);
            }
        } else if code == JMP | JA {
            masks[pc + 1 + i.k as usize] &= valid;
            valid = u16::MAX;
        } else if is_cond_jump(code) {
            masks[pc + 1 + i.jt as usize] &= valid;
            masks[pc + 1 + i.jf as usize] &= valid;
            valid = u16::MAX;
        }
    }
    Ok(())
}

/// What a program reads: its loads and `BPF_LEN`.
pub trait Input {
    /// The value of a load of `size` (`BPF_W`, `BPF_H` or `BPF_B`) at `off` (an
    /// absolute offset, `X + k` for indexed loads; ancillary offsets as given), or
    /// `None` when it is outside the data: the program then returns 0.
    fn load(&self, size: u16, off: u32) -> Option<u32>;
    /// `BPF_LEN`.
    fn bpf_len(&self) -> u32;
}

/// `struct seccomp_data` as a seccomp program reads it: aligned 32-bit loads in
/// the machine's (little-endian) order.
struct SeccompData<'a>(&'a [u8; DATA_SIZE as usize]);

impl Input for SeccompData<'_> {
    fn load(&self, _size: u16, off: u32) -> Option<u32> {
        let o = off as usize;
        let b = self.0.get(o..o + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bpf_len(&self) -> u32 {
        DATA_SIZE
    }
}

/// Runs a seccomp program that passed [`check`] over `data` (a `seccomp_data`) and
/// returns its verdict. Division by a zero X returns 0, as Linux's translation does.
pub fn run(prog: &[Insn], data: &[u8; DATA_SIZE as usize]) -> u32 {
    exec(prog, &SeccompData(data))
}

/// Runs a program that passed [`check`] or [`check_socket`] over `input`.
pub fn exec(prog: &[Insn], input: &impl Input) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEM_WORDS as usize];
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let code = i.code;
        match code & 0x07 {
            LDX if code & 0xe0 == MSH => match input.load(B, i.k) {
                Some(v) => x = (v & 0xf) << 2,
                None => return 0,
            },
            LD | LDX => {
                let v = match code & 0xe0 {
                    ABS => match input.load(code & 0x18, i.k) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match input.load(code & 0x18, x.wrapping_add(i.k)) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MEM => mem[(i.k & 15) as usize],
                    LEN => input.bpf_len(),
                    _ => i.k,
                };
                if code & 0x07 == LD {
                    a = v;
                } else {
                    x = v;
                }
            }
            ST => mem[(i.k & 15) as usize] = a,
            STX => mem[(i.k & 15) as usize] = x,
            ALU => {
                let src = if code & X != 0 { x } else { i.k };
                a = match code & 0xf0 {
                    ADD => a.wrapping_add(src),
                    SUB => a.wrapping_sub(src),
                    MUL => a.wrapping_mul(src),
                    DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    OR => a | src,
                    AND => a & src,
                    XOR => a ^ src,
                    LSH => a.wrapping_shl(src & 31),
                    RSH => a.wrapping_shr(src & 31),
                    NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            JMP => {
                if code & 0xf0 == JA {
                    pc += i.k as usize;
                    continue;
                }
                let src = if code & X != 0 { x } else { i.k };
                let taken = match code & 0xf0 {
                    JEQ => a == src,
                    JGT => a > src,
                    JGE => a >= src,
                    JSET => a & src != 0,
                    _ => return 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            RET => return if code & 0x18 == A { a } else { i.k },
            MISC => {
                if code & 0xf8 == TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return 0,
        }
    }
    // A checked program always ends in a return.
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(nr: u32) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&0xc000_003eu32.to_le_bytes());
        d
    }

    #[test]
    fn checks_like_linux() {
        let ret = Insn::stmt(RET | K, 0x7fff_0000);
        assert!(check(&[]).is_err());
        assert!(check(&[ret]).is_ok());
        // The last instruction must return.
        assert!(check(&[Insn::stmt(LD | W | ABS, 0)]).is_err());
        // Loads inside seccomp_data and aligned.
        assert!(check(&[Insn::stmt(LD | W | ABS, 64), ret]).is_err());
        assert!(check(&[Insn::stmt(LD | W | ABS, 2), ret]).is_err());
        assert!(check(&[Insn::stmt(LD | W | ABS, 60), ret]).is_ok());
        // Byte loads, MOD and indirect loads are not seccomp's.
        assert!(check(&[Insn::stmt(0x30, 0), ret]).is_err());
        assert!(check(&[Insn::stmt(ALU | 0x90 | K, 3), ret]).is_err());
        assert!(check(&[Insn::stmt(0x40, 0), ret]).is_err());
        // Constant division by zero and wide shifts.
        assert!(check(&[Insn::stmt(ALU | DIV | K, 0), ret]).is_err());
        assert!(check(&[Insn::stmt(ALU | LSH | K, 32), ret]).is_err());
        // Jumps stay inside.
        assert!(check(&[Insn::jump(JMP | JEQ | K, 0, 1, 0), ret]).is_err());
        assert!(check(&[Insn::stmt(JMP | JA, 1), ret]).is_err());
        assert!(check(&[Insn::stmt(JMP | JA, 0), ret]).is_ok());
        // Scratch memory is written before read, on every path.
        assert!(check(&[Insn::stmt(LD | MEM, 0), ret]).is_err());
        assert!(check(&[Insn::stmt(ST, 0), Insn::stmt(LD | MEM, 0), ret]).is_ok());
        assert!(check(&[
            Insn::jump(JMP | JEQ | K, 0, 1, 0),
            Insn::stmt(ST, 3),
            Insn::stmt(LDX | MEM, 3),
            ret
        ])
        .is_err());
        assert!(check(&[Insn::stmt(ST, 16), ret]).is_err());
        assert!(check(&vec![ret; MAX_INSNS]).is_ok());
        assert!(check(&vec![ret; MAX_INSNS + 1]).is_err());
    }

    #[test]
    fn runs_a_filter() {
        // if nr == 39 return ERRNO|1; else if nr > 100 return A (the nr); allow.
        let prog = [
            Insn::stmt(LD | W | ABS, 0),
            Insn::jump(JMP | JEQ | K, 39, 0, 1),
            Insn::stmt(RET | K, 0x0005_0001),
            Insn::jump(JMP | JGT | K, 100, 0, 1),
            Insn::stmt(RET | A, 0),
            Insn::stmt(RET | K, 0x7fff_0000),
        ];
        check(&prog).unwrap();
        assert_eq!(run(&prog, &data(39)), 0x0005_0001);
        assert_eq!(run(&prog, &data(200)), 200);
        assert_eq!(run(&prog, &data(1)), 0x7fff_0000);
    }

    #[test]
    fn alu_and_memory() {
        let prog = [
            Insn::stmt(LD | W | ABS, 4),   // arch
            Insn::stmt(ALU | RSH | K, 16), // 0xc000
            Insn::stmt(ST, 2),
            Insn::stmt(LDX | IMM, 0),
            Insn::stmt(LD | MEM, 2),
            Insn::stmt(ALU | DIV | X, 0), // X == 0: the program returns 0
            Insn::stmt(RET | A, 0),
        ];
        check(&prog).unwrap();
        assert_eq!(run(&prog, &data(1)), 0);
        let prog = [
            Insn::stmt(LD | W | LEN, 0),
            Insn::stmt(MISC | TAX, 0),
            Insn::stmt(LD | IMM, 3),
            Insn::stmt(ALU | MUL | X, 0),
            Insn::stmt(ALU | NEG, 0),
            Insn::stmt(RET | A, 0),
        ];
        check(&prog).unwrap();
        assert_eq!(run(&prog, &data(1)), (-(192i32)) as u32);
    }

    /// A frame as a socket filter reads it (network order).
    struct Frame<'a>(&'a [u8]);

    impl Input for Frame<'_> {
        fn load(&self, size: u16, off: u32) -> Option<u32> {
            let o = off as usize;
            let n = match size {
                B => 1,
                H => 2,
                _ => 4,
            };
            let b = self.0.get(o..o.checked_add(n)?)?;
            Some(b.iter().fold(0, |v, &x| (v << 8) | u32::from(x)))
        }

        fn bpf_len(&self) -> u32 {
            self.0.len() as u32
        }
    }

    #[test]
    fn socket_filters_load_bytes_in_network_order() {
        // tcpdump -dd 'udp dst port 53' over Ethernet (IPv4 part).
        let prog = [
            Insn::stmt(LD | H | ABS, 12),
            Insn::jump(JMP | JEQ | K, 0x0800, 0, 8),
            Insn::stmt(LD | B | ABS, 23),
            Insn::jump(JMP | JEQ | K, 17, 0, 6),
            Insn::stmt(LD | H | ABS, 20),
            Insn::jump(JMP | JSET | K, 0x1fff, 4, 0),
            Insn::stmt(LDX | B | MSH, 14),
            Insn::stmt(LD | H | IND, 16),
            Insn::jump(JMP | JEQ | K, 53, 0, 1),
            Insn::stmt(RET | K, 262144),
            Insn::stmt(RET | K, 0),
        ];
        // Byte loads are not seccomp's.
        assert!(check(&prog).is_err());
        check_socket(&prog).unwrap();
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 17;
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(exec(&prog, &Frame(&f)), 262144);
        f[37] = 54;
        assert_eq!(exec(&prog, &Frame(&f)), 0);
        // A load past the end returns 0.
        assert_eq!(exec(&prog, &Frame(&f[..30])), 0);
        // MOD by a constant zero is refused; by X zero returns 0.
        assert!(check_socket(&[Insn::stmt(ALU | MOD | K, 0), Insn::stmt(RET | A, 0)]).is_err());
        let m = [
            Insn::stmt(LD | W | LEN, 0),
            Insn::stmt(ALU | MOD | K, 5),
            Insn::stmt(RET | A, 0),
        ];
        check_socket(&m).unwrap();
        assert_eq!(exec(&m, &Frame(&f)), (42 % 5) as u32);
        // Unknown opcodes are refused.
        assert!(check_socket(&[Insn::stmt(0xff, 0), Insn::stmt(RET | A, 0)]).is_err());
    }
}
