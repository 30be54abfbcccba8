//! The workload on a Cortex-M4F: no allocator, no threads, no libstd; xent
//! built without its `std` feature. Prints one line per result over
//! semihosting and exits with the failure count's verdict.
#![no_std]
#![no_main]

mod workload;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

#[entry]
fn main() -> ! {
    let failures = workload::run(&mut |name, hash| hprintln!("{} {:016x}", name, hash));
    hprintln!("failures {}", failures);
    debug::exit(if failures == 0 { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // Only reached without a debugger or emulator to exit to.
    loop {
        cortex_m::asm::wfi();
    }
}
