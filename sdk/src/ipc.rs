//! The wire format between host and plugin, shared by both sides so they cannot drift apart.
//!
//! A schema crosses once, as an Arrow IPC schema message. Each batch then crosses as the IPC stream
//! messages for exactly one record batch: any dictionary batches it needs, then the record batch.
//! Buffers are aligned to 64 bytes within the message, so the receiver decodes them in place
//! (no copy) whenever the message itself sits at an aligned address.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
pub use arrow_buffer::{Buffer, MutableBuffer};
use arrow_ipc::MessageHeader;
use arrow_ipc::reader::{RecordBatchDecoder, StreamDecoder, read_dictionary_impl};
use arrow_ipc::writer::{StreamEncoder, StreamWriter};
use arrow_schema::{ArrowError, Schema, SchemaRef};

/// Encodes a schema as a stream-framed IPC schema message.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    Ok(std::mem::take(writer.get_mut()))
}

/// The IPC end-of-stream marker. The stream decoder only completes a message once it sees bytes
/// after it, so a lone schema message is decoded with this marker appended.
const END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// Decodes a stream-framed IPC schema message.
pub fn decode_schema(bytes: &[u8]) -> Result<Schema, ArrowError> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from([bytes, &END_OF_STREAM].concat());
    if decoder.decode(&mut buffer)?.is_some() || !buffer.is_empty() {
        return Err(ArrowError::IpcError(
            "expected a schema message alone, found record batches after it".into(),
        ));
    }
    decoder.finish()?;
    decoder
        .schema()
        .map(|schema| schema.as_ref().clone())
        .ok_or_else(|| ArrowError::IpcError("incomplete IPC schema message".into()))
}

/// Encodes the batches of one stream, one payload per batch.
///
/// The dictionary state carries across batches, as in an IPC stream.
pub struct BatchEncoder {
    encoder: StreamEncoder,
    /// Bytes of the schema message still to drop from the front of the next encoding: the
    /// schema crosses on its own, in `open`.
    schema_prefix: usize,
    schema: SchemaRef,
}

impl BatchEncoder {
    /// A new encoder, and the schema message that starts its stream.
    pub fn new(schema: SchemaRef) -> Result<(Self, Vec<u8>), ArrowError> {
        let schema_message = encode_schema(&schema)?;
        let encoder = StreamEncoder::try_new(&schema)?;
        Ok((
            Self {
                encoder,
                schema_prefix: schema_message.len(),
                schema,
            },
            schema_message,
        ))
    }

    /// The schema every encoded batch must have.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Encodes one batch. The batch's fields must equal the stream's schema.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        let pieces = self.encode_pieces(batch)?;
        let mut payload = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
        for piece in &pieces {
            payload.extend_from_slice(piece);
        }
        Ok(payload)
    }

    /// Encodes one batch without copying its arrays: the payload is the concatenation of the
    /// pieces, which share the batch's buffers (metadata and padding are small pieces of
    /// their own). The batch's fields must equal the stream's schema.
    pub fn encode_pieces(&mut self, batch: &RecordBatch) -> Result<Vec<Buffer>, ArrowError> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch schema {} does not match the declared schema {}",
                batch.schema(),
                self.schema
            )));
        }
        let mut pieces = self.encoder.encode(batch)?;
        if self.schema_prefix > 0 {
            // The first encoding starts with the schema message, already sent.
            let mut dropped = 0;
            let mut count = 0;
            while dropped < self.schema_prefix && count < pieces.len() {
                dropped += pieces[count].len();
                count += 1;
            }
            if dropped != self.schema_prefix {
                return Err(ArrowError::IpcError(
                    "the IPC encoder did not start its stream with the schema message".into(),
                ));
            }
            pieces.drain(..count);
            self.schema_prefix = 0;
        }
        Ok(pieces)
    }
}

/// Decodes the payloads of one stream, each into exactly one batch of the stream's schema.
pub struct BatchDecoder {
    decoder: Decoder,
    schema: SchemaRef,
}

enum Decoder {
    /// Arrow's stream decoder, validating everything.
    Validating(StreamDecoder),
    /// Reads the messages itself so that it can skip the validation of buffer contents (Arrow's
    /// `StreamDecoder` skips it for dictionaries only). Keeps the stream's dictionaries.
    Trusted(HashMap<i64, ArrayRef>),
}

impl BatchDecoder {
    /// A decoder for the stream that `schema_message` starts.
    pub fn new(schema_message: &[u8]) -> Result<Self, ArrowError> {
        let schema = Arc::new(decode_schema(schema_message)?);
        // The decoder completes the schema message when the first payload arrives.
        let mut decoder = StreamDecoder::new();
        let mut buffer = Buffer::from(schema_message);
        if decoder.decode(&mut buffer)?.is_some() || !buffer.is_empty() {
            return Err(ArrowError::IpcError(
                "expected a schema message alone, found more after it".into(),
            ));
        }
        Ok(Self {
            decoder: Decoder::Validating(decoder),
            schema,
        })
    }

    /// A decoder for the stream that `schema_message` starts, which checks the framing of each
    /// payload and its buffers' bounds, but neither their contents (offsets, UTF-8, null counts)
    /// nor that the batch's layout matches the schema:
    /// for payloads from a party that produced them from valid arrays or has validated them.
    /// Plugins decode their input with it, since the host validated (or built) every batch it
    /// sends; the host never uses it on what a plugin returns.
    ///
    /// # Safety
    /// Every payload given to [`decode`](Self::decode) must hold valid Arrow data for the schema
    /// (as any [`BatchEncoder`] of this schema produces). Invalid data makes later reads of the
    /// decoded arrays undefined behaviour.
    pub unsafe fn new_trusted(schema_message: &[u8]) -> Result<Self, ArrowError> {
        let schema = Arc::new(decode_schema(schema_message)?);
        Ok(Self {
            decoder: Decoder::Trusted(HashMap::new()),
            schema,
        })
    }

    /// A decoder for a stream of `schema`.
    pub fn for_schema(schema: &Schema) -> Result<Self, ArrowError> {
        Self::new(&encode_schema(schema)?)
    }

    /// The stream's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Decodes one payload. It must hold exactly one record batch (after any dictionaries) and
    /// nothing else. Buffers are validated, and shared with `payload` where aligned.
    pub fn decode(&mut self, payload: Vec<u8>) -> Result<RecordBatch, ArrowError> {
        self.decode_buffer(Buffer::from_vec(payload))
    }

    /// [`decode`](Self::decode) for a payload already in a [`Buffer`]; the batch's arrays share
    /// its memory where aligned, so a clone of `payload` kept by the caller costs nothing.
    pub fn decode_buffer(&mut self, payload: Buffer) -> Result<RecordBatch, ArrowError> {
        let decoder = match &mut self.decoder {
            Decoder::Validating(decoder) => decoder,
            Decoder::Trusted(dictionaries) => {
                return decode_trusted(payload, &self.schema, dictionaries);
            }
        };
        let len = payload.len();
        let mut buffer = payload;
        let batch = decoder.decode(&mut buffer)?.ok_or_else(|| {
            ArrowError::IpcError(format!(
                "payload of {len} bytes holds no complete record batch"
            ))
        })?;
        if !buffer.is_empty() {
            return Err(ArrowError::IpcError(format!(
                "payload holds {} bytes after its record batch; expected exactly one batch",
                buffer.len()
            )));
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "decoded batch schema {} differs from the stream's {}",
                batch.schema(),
                self.schema
            )));
        }
        Ok(batch)
    }
}

/// Decodes one payload (dictionary batches, then one record batch) without validating buffer
/// contents. The framing, the flatbuffer metadata and buffer bounds are still checked.
fn decode_trusted(
    payload: Buffer,
    schema: &SchemaRef,
    dictionaries: &mut HashMap<i64, ArrayRef>,
) -> Result<RecordBatch, ArrowError> {
    let error = |message: String| ArrowError::IpcError(message);
    // Arrow's `UnsafeFlag`, named through the method that takes it (its crate, arrow-data, is
    // not a dependency of ours).
    fn flag_of<'a, F: Default>(_: fn(RecordBatchDecoder<'a>, F) -> RecordBatchDecoder<'a>) -> F {
        F::default()
    }
    let mut skip_validation = flag_of(RecordBatchDecoder::with_skip_validation);
    // SAFETY: only reachable through `BatchDecoder::new_trusted`, whose caller promises valid
    // payloads.
    unsafe { skip_validation.set(true) };
    let mut offset = 0;
    while offset < payload.len() {
        let bytes = &payload[offset..];
        if bytes.len() < 8 || bytes[..4] != [0xff; 4] {
            return Err(error(format!(
                "expected an IPC message at byte {offset} of the payload"
            )));
        }
        let metadata_len = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let metadata_end = usize::try_from(metadata_len)
            .ok()
            .filter(|len| *len > 0)
            .map(|len| 8 + len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| error(format!("bad IPC message length at byte {offset}")))?;
        let message = arrow_ipc::root_as_message(&bytes[8..metadata_end])
            .map_err(|e| error(format!("unreadable IPC message at byte {offset}: {e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|len| metadata_end + len <= bytes.len())
            .ok_or_else(|| error(format!("IPC message body at byte {offset} is truncated")))?;
        let body = payload.slice_with_length(offset + metadata_end, body_len);
        offset += metadata_end + body_len;
        match message.header_type() {
            MessageHeader::DictionaryBatch => {
                let dictionary = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| error("unreadable dictionary batch".into()))?;
                read_dictionary_impl(
                    &body,
                    dictionary,
                    schema,
                    dictionaries,
                    &message.version(),
                    false,
                    skip_validation.clone(),
                )?;
            }
            MessageHeader::RecordBatch => {
                let header = message
                    .header_as_record_batch()
                    .ok_or_else(|| error("unreadable record batch".into()))?;
                if offset != payload.len() {
                    return Err(error(format!(
                        "payload holds {} bytes after its record batch; expected exactly one batch",
                        payload.len() - offset
                    )));
                }
                return RecordBatchDecoder::try_new(
                    &body,
                    header,
                    schema.clone(),
                    dictionaries,
                    &message.version(),
                )?
                .with_skip_validation(skip_validation)
                .read_record_batch();
            }
            other => {
                return Err(error(format!(
                    "unexpected IPC message {other:?} in a batch payload"
                )));
            }
        }
    }
    Err(error(format!(
        "payload of {} bytes holds no complete record batch",
        payload.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, DictionaryArray, Int64Array, StringArray, types::Int32Type};
    use arrow_schema::{DataType, Field};

    fn batch() -> RecordBatch {
        let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])) as ArrayRef,
            ),
            ("tag", Arc::new(dict) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn batches_round_trip_with_dictionaries() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        for _ in 0..3 {
            let payload = encoder.encode(&input).unwrap();
            assert_eq!(decoder.decode(payload).unwrap(), input);
        }
    }

    #[test]
    fn pieces_concatenate_to_the_stream_writers_encoding() {
        let input = batch();
        let sliced = input.slice(1, 2);
        let mut writer = StreamWriter::try_new(Vec::new(), &input.schema()).unwrap();
        let schema_message = std::mem::take(writer.get_mut());
        let (mut encoder, message) = BatchEncoder::new(input.schema()).unwrap();
        assert_eq!(message, schema_message);
        for batch in [&input, &input, &sliced, &input] {
            writer.write(batch).unwrap();
            let expected = std::mem::take(writer.get_mut());
            let pieces = encoder.encode_pieces(batch).unwrap();
            let bytes: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn trusted_decoder_reads_what_the_encoder_wrote() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        // SAFETY: every payload comes from `encoder`.
        let mut decoder = unsafe { BatchDecoder::new_trusted(&schema_message) }.unwrap();
        for _ in 0..3 {
            let payload = encoder.encode(&input).unwrap();
            assert_eq!(decoder.decode(payload).unwrap(), input);
        }
        let payload = encoder.encode(&input).unwrap();
        assert!(
            decoder
                .decode(payload[..payload.len() / 2].to_vec())
                .is_err()
        );
        let payload = encoder.encode(&input).unwrap();
        let twice = [payload.clone(), payload].concat();
        let err = decoder.decode(twice).unwrap_err().to_string();
        assert!(err.contains("after its record batch"), "{err}");
        // The framing is still checked.
        assert!(decoder.decode(vec![0xff; 64]).is_err());
        assert!(decoder.decode(vec![0; 7]).is_err());
    }

    #[test]
    fn encoder_refuses_a_batch_of_another_schema() {
        let (mut encoder, _) = BatchEncoder::new(batch().schema()).unwrap();
        let other = RecordBatch::try_from_iter([(
            "id",
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        )])
        .unwrap();
        let err = encoder.encode(&other).unwrap_err().to_string();
        assert!(err.contains("does not match the declared schema"), "{err}");
    }

    #[test]
    fn decoder_rejects_garbage_truncation_and_trailing_bytes() {
        let input = batch();
        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        assert!(decoder.decode(vec![0xff; 64]).is_err());

        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let payload = encoder.encode(&input).unwrap();
        let truncated = payload[..payload.len() / 2].to_vec();
        assert!(decoder.decode(truncated).is_err());

        let (mut encoder, schema_message) = BatchEncoder::new(input.schema()).unwrap();
        let mut decoder = BatchDecoder::new(&schema_message).unwrap();
        let payload = encoder.encode(&input).unwrap();
        let twice = [payload.clone(), payload].concat();
        let err = decoder.decode(twice).unwrap_err().to_string();
        assert!(err.contains("after its record batch"), "{err}");
    }

    #[test]
    fn decoder_rejects_a_batch_of_another_layout() {
        let narrow = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        let mut decoder = BatchDecoder::for_schema(&narrow).unwrap();
        let input = batch();
        let (mut encoder, _) = BatchEncoder::new(input.schema()).unwrap();
        assert!(decoder.decode(encoder.encode(&input).unwrap()).is_err());
    }

    #[test]
    fn schema_round_trip() {
        let schema = batch().schema();
        let bytes = encode_schema(&schema).unwrap();
        assert_eq!(decode_schema(&bytes).unwrap(), *schema);
        assert!(decode_schema(&bytes[..bytes.len() / 2]).is_err());
    }
}
