//! Starling edge worker (in progress).
