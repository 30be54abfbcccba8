//! embedded/src/workload.rs on the host with the std build: `make
//! test-embedded` compares its printout with the emulated Cortex-M4F's.

#[path = "../embedded/src/workload.rs"]
mod workload;

fn main() {
    let failures = workload::run(&mut |name, hash| println!("{name} {hash:016x}"));
    println!("failures {failures}");
    std::process::exit(i32::from(failures != 0));
}
