//! The only way Steward talks to the outside world: address classification, own DNS, pinned and capped fetches.
