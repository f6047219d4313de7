//! The contract's codec: prost, except that a message that does not decode (a string field that
//! is not UTF-8, a truncated or malformed message) is the sender's bad input, INVALID_ARGUMENT
//! with the reason, where tonic-prost answers INTERNAL. Encoding is tonic-prost's own.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstEncoder};

/// Used by the generated client and server code (`codec_path` in build.rs).
#[derive(Debug, Clone, Default)]
pub struct ContractCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for ContractCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ContractDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ContractDecoder(PhantomData)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContractDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ContractDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(undecodable)
    }
}

/// Why a message could not be read, as the status its sender gets.
pub fn undecodable(e: prost::DecodeError) -> Status {
    Status::invalid_argument(format!(
        "the message does not decode as nanobot.sandbox.v1 protobuf: {e} \
         (string fields must be valid UTF-8)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::ReadFileRequest;

    #[test]
    fn a_string_field_that_is_not_utf8_is_invalid_argument() {
        // ReadFileRequest { workspace = 1: "w", path = 2: b"\xff\xfe" }, encoded by hand.
        let bytes = [0x0a, 0x01, b'w', 0x12, 0x02, 0xff, 0xfe];
        let e = ReadFileRequest::decode(&bytes[..]).map_err(undecodable);
        let st = e.expect_err("not UTF-8");
        assert_eq!(st.code(), tonic::Code::InvalidArgument);
        assert!(st.message().contains("UTF-8"), "{}", st.message());
        // The same message with valid bytes decodes.
        let ok = [0x0a, 0x01, b'w', 0x12, 0x02, b'a', b'b'];
        assert_eq!(ReadFileRequest::decode(&ok[..]).unwrap().path, "ab");
    }
}
