//! grid(1), and mount.grid when installed under that name (a link to
//! `grid`: cargo cannot name a binary `mount.grid`). All of it is in the
//! library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread: keep msize-sized read buffers in the heap.
    gridd::alloc::tune_for_large_buffers();
    grid::main(std::env::args_os().collect())
}
