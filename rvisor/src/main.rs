//! `rvisor`: the OCI runtime command line.

fn main() {
    println!("rvisor");
}
