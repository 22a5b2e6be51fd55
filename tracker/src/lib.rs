//! Starling browser tracker (in progress).
