use super::decode::*;
use super::partitions::*;
use crate::ack::Status;
use crate::batch::FailureKind;
use crate::record::Position;
use crate::Json;
