//! IANA time zones from the runtime's `Intl.DateTimeFormat`: no time zone database in the wasm.

use js_sys::{Array, Date, Intl, Object, Reflect};
use starling_core::query::TimeZone;
use wasm_bindgen::JsValue;

/// A time zone backed by an `Intl.DateTimeFormat` formatter (or UTC).
pub struct IntlZone {
    format: Option<Intl::DateTimeFormat>,
}

/// Resolves an IANA name (`None` = UTC); `None` when the runtime does not know the zone.
pub fn resolve(name: Option<&str>) -> Option<IntlZone> {
    let Some(name) = name.filter(|n| !n.eq_ignore_ascii_case("UTC")) else {
        return Some(IntlZone { format: None });
    };
    let options = Object::new();
    for (k, v) in [
        ("timeZone", name),
        ("hourCycle", "h23"),
        ("year", "numeric"),
        ("month", "numeric"),
        ("day", "numeric"),
        ("hour", "numeric"),
        ("minute", "numeric"),
        ("second", "numeric"),
    ] {
        Reflect::set(&options, &k.into(), &v.into()).ok()?;
    }
    // The constructor throws a RangeError for unknown zones.
    let intl = Reflect::get(&js_sys::global(), &"Intl".into()).ok()?;
    let ctor: js_sys::Function = Reflect::get(&intl, &"DateTimeFormat".into())
        .ok()
        .and_then(|v| wasm_bindgen::JsCast::dyn_into(v).ok())?;
    let args = Array::of2(&"en-US".into(), &options);
    let format = Reflect::construct(&ctor, &args).ok()?;
    Some(IntlZone {
        format: Some(wasm_bindgen::JsCast::unchecked_into(format)),
    })
}

impl TimeZone for IntlZone {
    fn offset_secs(&self, utc_secs: i64) -> i32 {
        let Some(format) = &self.format else { return 0 };
        let date = Date::new(&JsValue::from_f64(utc_secs as f64 * 1000.0));
        let parts = format.format_to_parts(&date);
        let mut f = [0i64; 6]; // year, month, day, hour, minute, second
        for part in parts.iter() {
            let kind = Reflect::get(&part, &"type".into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let value: i64 = Reflect::get(&part, &"value".into())
                .ok()
                .and_then(|v| v.as_string())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let slot = match kind.as_str() {
                "year" => 0,
                "month" => 1,
                "day" => 2,
                "hour" => 3,
                "minute" => 4,
                "second" => 5,
                _ => continue,
            };
            f[slot] = value;
        }
        let local_ms = Date::utc(f[0] as f64, (f[1] - 1) as f64) as i64
            + (f[2] - 1) * 86_400_000
            + f[3] * 3_600_000
            + f[4] * 60_000
            + f[5] * 1000;
        ((local_ms - utc_secs * 1000) / 1000) as i32
    }
}
