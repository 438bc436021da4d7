use events::prelude::*;

#[event(store)]
struct Wrapped<T> {
    inner: T,
}

fn main() {}
