@decode @destructive
Feature: Decode failure
  When a decode node dies, the prefill side must keep serving on its own (degraded mode);
  clients in flight on the dead node must see a cut stream, never a silent short answer.

  Scenario: The only decode node is killed
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the decode node is killed after 1500ms for 2s
    And the load runs for 6s
    Then requests are served prefill-only within 1s of the fault
    And the success rate during the fault is at least 95%
    And requests are served disaggregated again within 2s of the heal
    And every completed answer is complete

  Scenario: One of three decode nodes is killed
    Given a local P/D deployment with 1 prefill and 3 decode nodes
    And a load of 6 concurrent users
    When the decode node is killed after 1500ms for 2s
    And the load runs for 5s
    Then requests are served disaggregated within 1s of the fault
    And the success rate over the whole run is at least 90%
    And every completed answer is complete

  Scenario: A decode node is killed mid-stream
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 8 concurrent users
    When the decode node is killed after 1500ms for 2s
    And the load runs for 5s
    Then at least 1 request over the whole run ended as stream_cut
    And no request over the whole run ended as timeout_total
    And no request over the whole run ended as empty_answer
    And every completed answer is complete
