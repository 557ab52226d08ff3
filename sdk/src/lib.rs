//! The Weir plugin SDK
