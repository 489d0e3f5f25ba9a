//! The loop every copying call (read, write, their vectored forms, sendfile,
//! copy_file_range) runs: data moves in pieces, a task that must exit stops
//! between two pieces (never before the first, so a call always makes progress),
//! and an error after some bytes moved ends the call with those bytes, as Linux
//! returns a short count rather than the error.

use crate::errno::SysResult;

/// What one piece of a transfer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Piece {
    /// Bytes it moved.
    pub moved: usize,
    /// Whether to go on with the next piece.
    pub more: bool,
}

impl Piece {
    /// `moved` bytes, and more to come only if the piece was full (`want`) and
    /// `left` bytes remain after it.
    pub fn of(moved: usize, want: usize, left: usize) -> Piece {
        Piece {
            moved,
            more: moved == want && left > moved,
        }
    }

    /// The last piece: `moved` bytes, then stop.
    pub fn last(moved: usize) -> Piece {
        Piece { moved, more: false }
    }
}

/// Runs `piece(ctx, done)` (with the bytes moved so far) until a piece says
/// stop, `must_stop(ctx)` holds between two pieces (a fatal signal), or a piece
/// fails: its error is the call's if nothing moved yet, else the call returns
/// what moved. `ctx` is what both need (the task, shared or not).
pub(super) fn in_pieces<C>(
    mut ctx: C,
    what: &str,
    must_stop: impl Fn(&C) -> bool,
    mut piece: impl FnMut(&mut C, usize) -> SysResult<Piece>,
) -> SysResult<usize> {
    let mut done = 0usize;
    loop {
        if done > 0 && must_stop(&ctx) {
            break;
        }
        match piece(&mut ctx, done) {
            Ok(p) => {
                done += p.moved;
                if !p.more {
                    break;
                }
            }
            Err(e) if done > 0 => {
                tracing::debug!("{what} stopped after {done} bytes: {e}");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::Errno;
    use std::cell::Cell;

    #[test]
    fn an_error_before_any_byte_is_the_calls() {
        assert_eq!(
            in_pieces((), "t", |_| false, |_, _| Err(Errno::EFAULT)),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn an_error_after_some_bytes_is_a_short_count() {
        let r = in_pieces(
            (),
            "t",
            |_| false,
            |_, done| {
                if done < 8 {
                    Ok(Piece::of(4, 4, 100))
                } else {
                    Err(Errno::EIO)
                }
            },
        );
        assert_eq!(r, Ok(8));
    }

    #[test]
    fn a_fatal_signal_stops_between_pieces_never_before_the_first() {
        let calls = Cell::new(0);
        let r = in_pieces(
            (),
            "t",
            |_| true,
            |_, _| {
                calls.set(calls.get() + 1);
                Ok(Piece::of(4, 4, 100))
            },
        );
        assert_eq!((r, calls.get()), (Ok(4), 1));
        // A stop asked for before anything moved does not cut the first piece.
        let r = in_pieces((), "t", |_| true, |_, _| Ok(Piece::last(0)));
        assert_eq!(r, Ok(0));
    }

    #[test]
    fn a_short_or_final_piece_ends_the_transfer() {
        let calls = Cell::new(0);
        let r = in_pieces(
            (),
            "t",
            |_| false,
            |_, done| {
                calls.set(calls.get() + 1);
                Ok(Piece::of(if done == 0 { 4 } else { 2 }, 4, 100 - done))
            },
        );
        assert_eq!((r, calls.get()), (Ok(6), 2));
        assert_eq!(Piece::of(4, 4, 4), Piece::last(4));
    }
}
