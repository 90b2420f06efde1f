use super::encode::*;
