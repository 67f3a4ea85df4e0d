//! Records in: Produce, and the producer ids idempotent producers number
//! their batches under (InitProducerId). Transactions are not supported.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    ResponseKind,
};
use kafka_protocol::ResponseError;

use super::{text, Answer, Broker, Context};

pub fn produce(broker: &Broker, cx: &Context<'_>, r: &ProduceRequest) -> Answer {
    let mut responses = Vec::with_capacity(r.topic_data.len());
    for t in &r.topic_data {
        let topic = if cx.version >= 13 {
            broker.storage.topic_by_id(&t.topic_id)
        } else {
            broker.storage.topic(&t.name).or_else(|| {
                broker
                    .auto_create_topics
                    .then(|| {
                        broker
                            .storage
                            .create_topic(&t.name, 1, Vec::new(), false)
                            .ok()
                    })
                    .flatten()
            })
        };
        let partitions = t
            .partition_data
            .iter()
            .map(|p| {
                let answer = PartitionProduceResponse::default().with_index(p.index);
                let Some(topic) = &topic else {
                    let error = if cx.version >= 13 {
                        ResponseError::UnknownTopicId
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    };
                    return answer.with_error_code(error.code()).with_base_offset(-1);
                };
                let records = p.records.as_deref().unwrap_or_default();
                match broker.storage.produce(topic, p.index, records) {
                    Ok((base_offset, log_start)) => answer
                        .with_base_offset(base_offset)
                        .with_log_start_offset(log_start),
                    Err(refused) => answer
                        .with_error_code(refused.error.code())
                        .with_base_offset(-1)
                        .with_error_message((cx.version >= 8).then(|| text(refused.message))),
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if r.acks == 0 {
        return Answer::Nothing;
    }
    Answer::Message(Box::new(ResponseKind::Produce(
        ProduceResponse::default().with_responses(responses),
    )))
}

pub fn init_producer_id(broker: &Broker, r: &InitProducerIdRequest) -> InitProducerIdResponse {
    let refuse = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if r.transactional_id.is_some() {
        // No transactions here: a transactional producer is refused at its start.
        return refuse(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // A producer asking again with its id and epoch (KIP-360) gets the next epoch.
    if r.producer_id.0 >= 0 && r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(r.producer_id)
            .with_producer_epoch(r.producer_epoch + 1);
    }
    match broker.storage.new_producer_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(refused) => refuse(refused.error),
    }
}
