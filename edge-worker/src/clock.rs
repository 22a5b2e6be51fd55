//! The one clock: the runtime's `Date.now()`. Inside a request or batch, Workers advance it only on I/O
//! (so it cannot be used to time CPU work); latencies measured with it include the waits on D1, R2 and
//! the queue.

/// Now, UTC milliseconds.
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// Now, UTC seconds.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}
