@completeness
Feature: Stream completeness
  A cut-off thinking stream, an empty answer or a stream without its end marker is a failure,
  and the suite must catch and count each by kind.

  Scenario: Truncated thinking is caught and counted
    Given a local P/D deployment with 1 prefill and 1 decode node
    And the deployment drops the answer after thinking
    When the load runs for 2s
    Then at least 1 request over the whole run ended as truncated_reasoning
    And no request over the whole run ended as ok

  Scenario: Streams that end without [DONE] are caught and counted
    Given a local P/D deployment with 1 prefill and 1 decode node
    And the deployment ends streams without [DONE]
    When the load runs for 2s
    Then at least 1 request over the whole run ended as stream_cut
    And no request over the whole run ended as ok

  Scenario: A healthy deployment answers completely
    Given a local P/D deployment with 1 prefill and 1 decode node
    When the load runs for 2s
    Then every completed answer is complete
    And the success rate over the whole run is at least 100%
