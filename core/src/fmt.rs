//! One logging shim for the whole core: `defmt` on boards, `log` on Linux, nothing by default.
//!
//! Format strings must be valid for both back ends: use `{}` and `{:?}` only, and pass arguments
//! positionally. Without a logging feature the arguments are still evaluated by reference, so
//! no "unused variable" warnings depend on the feature set.
#![allow(unused_macros)]

macro_rules! log_impl {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(feature = "log")]
        ::log::$level!($s $(, $x)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        let _ = ($( & $x ),*);
    }};
}

macro_rules! trace {
    ($($arg:tt)*) => { log_impl!(trace, $($arg)*) };
}

macro_rules! debug {
    ($($arg:tt)*) => { log_impl!(debug, $($arg)*) };
}

macro_rules! warn {
    ($($arg:tt)*) => { log_impl!(warn, $($arg)*) };
}
